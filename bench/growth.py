#!/usr/bin/env python3
"""growth.py DIR LO HI: bench/growth.sh's summary, in Markdown.

DIR/latency.tsv: lines "CELL CMD VARIANT ROUND<TAB>ms<TAB>rss<TAB>status"
(bench/nfb_time), CELL = "pP sS"; LO and HI name the two cells. For each
command and variant other than base: the added time (variant - base of the
same round and cell) at LO and at HI, median and p90, and the growth
median(HI) - median(LO) with a 90 % bootstrap interval that resamples the
rounds, keeping each round's two cells together (they ran seconds apart),
the median of the per-round growth, and the mean growth with its interval
(a cross-check: a DEL's times come in steps of ~4 ms here, the veth
deletion waiting out RCU grace periods, which moves medians). With tuning among the variants,
also "nf - tun": netfence's time beyond a trivial plugin's, and how that
grows (what netfence adds beyond what any plugin's call does). Exits 1 if any timed call failed.
"""
import collections
import math
import random
import sys

from report import verdict  # the rule every target is judged by


def med(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return float("nan")
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else float("nan")


def main():
    d, lo, hi = sys.argv[1:4]
    t = collections.defaultdict(dict)  # (cell, cmd, variant) -> {round: ms}
    failed = 0
    for line in open(d + "/latency.tsv"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 4:
            continue
        p, s, cmd, v, r = f[0].split()
        if f[3] != "0":
            failed += 1
        t[("%s %s" % (p, s), cmd, v)][int(r)] = float(f[1])
    variants = sorted({k[2] for k in t if k[2] != "base"})
    print("# Growth from %s to %s, rounds interleaved (bench/growth.sh)\n" % (lo, hi))
    print("Added = variant - base, same round, same node (ms). Growth = median at %s - median at %s; "
          "90 %% bootstrap interval over rounds (1,000 resamples, each round's two cells together).\n" % (hi, lo))
    print("| cmd | variant | rounds | added at %s (median, p90) | added at %s (median, p90) "
          "| growth [90 %% interval] | median of per-round growth | mean growth [90 %% interval] | < 1 ms |" % (lo, hi))
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [(v, "base") for v in ["base"] + variants]
    if "nf" in variants and "tun" in variants:
        rows.append(("nf", "tun"))  # netfence's beyond what any plugin's grows
    for cmd in ("ADD", "DEL"):
        for v, ref in rows:
            def added(cell, r):
                x = t[(cell, cmd, v)][r]
                return x if v == ref else x - t[(cell, cmd, ref)][r]
            rs = sorted(r for r in t[(lo, cmd, v)]
                        if all(r in t[(c, cmd, w)] for c in (lo, hi) for w in (ref, v)))
            if not rs:
                continue
            a = [added(lo, r) for r in rs]
            b = [added(hi, r) for r in rs]
            g = med(b) - med(a)
            rnd = random.Random(1)
            boots, mboots = [], []
            for _ in range(1000):
                idx = [rnd.randrange(len(rs)) for _ in rs]
                boots.append(med([b[i] for i in idx]) - med([a[i] for i in idx]))
                mboots.append(sum(b[i] - a[i] for i in idx) / len(idx))
            boots.sort()
            mboots.sort()
            blo, bhi = boots[50], boots[949]
            mg = sum(y - x for x, y in zip(a, b)) / len(rs)
            judged = verdict((blo, bhi)) if v == "nf" and ref == "base" else ""
            name = "base (its own time)" if v == ref else v if ref == "base" else "%s - %s" % (v, ref)
            print("| %s | %s | %d | %.2f, %.2f | %.2f, %.2f | %+.2f [%+.2f, %+.2f] | %+.2f | %+.2f [%+.2f, %+.2f] | %s |" % (
                cmd, name, len(rs), med(a), pct(a, 90), med(b), pct(b, 90), g, blo, bhi,
                med([y - x for x, y in zip(a, b)]), mg, mboots[50], mboots[949], judged))
    print()
    if failed:
        print("%d timed calls failed" % failed)
        sys.exit(1)


main()
