#!/usr/bin/env python3
"""Which plugin of the chain takes the time: the table of an NFB_EACH=1 run.

Usage: bench/each.py RESULTS_DIR   (a bench/run.sh --out directory made with
NFB_EACH=1: it reads each.tsv and latency.tsv and prints a markdown table)

each.tsv has one line per plugin call, "<cell> <ADD|DEL> <variant> <round>
<plugin>\t<ms>" (host-local runs inside bridge, so bridge's time includes
it); latency.tsv one line per cnitool call, "<cell> <ADD|DEL> <variant>
<round>\t<ms>". For each cell and command, the medians over the rounds of
the per-round difference to the baseline's (bridge + host-local alone) same
round: the whole call, bridge's part, and the rest (cnitool and libcni:
the call minus its top-level plugins), for netfence (nf) and for tuning
(tun), a chained plugin that does nothing; and the chained plugin's own
time. The last column is the 90 % bootstrap interval of the median of
(nf - base) - (tun - base) for the whole call, round by round: what
netfence costs more than being one more plugin at all.
"""
import collections
import random
import statistics as st
import sys

CHAINED = {"nf": "netfence", "tun": "tuning"}


def load(path, nlab):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            lab = parts[0].split()
            if len(lab) == nlab and len(parts) > 1:
                rows.append((lab, float(parts[1])))
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    plug = collections.defaultdict(lambda: collections.defaultdict(float))
    for lab, ms in load(d + "/each.tsv", 6):
        plug[(lab[0] + " " + lab[1], lab[2], lab[3], lab[4])][lab[5]] += ms
    total = {}
    for lab, ms in load(d + "/latency.tsv", 5):
        total[(lab[0] + " " + lab[1], lab[2], lab[3], lab[4])] = ms
    if not plug or not total:
        sys.exit(f"each.py: no NFB_EACH=1 data in {d} (each.tsv, latency.tsv)")

    def part(key, what):
        p = plug[key]
        if what == "total":
            return total[key]
        if what == "rest":  # host-local is inside bridge
            return total[key] - sum(v for n, v in p.items() if n != "host-local")
        return p.get(what, 0.0)

    def boot(xs, n=1000):
        rnd = random.Random(1)
        meds = sorted(st.median(rnd.choices(xs, k=len(xs))) for _ in range(n))
        return meds[int(0.05 * n)], meds[int(0.95 * n) - 1]

    cells = sorted({k[0] for k in total}, key=lambda c: [int(x[1:]) for x in c.split()])
    print("| cell | cmd | rounds | nf itself | tun itself | total: nf - base | tun - base "
          "| bridge: nf - base | tun - base | rest: nf - base | tun - base | (nf - tun) total, 90 % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for cmd in ("ADD", "DEL"):
        for cell in cells:
            rounds = sorted({k[3] for k in total if k[0] == cell and k[1] == cmd}, key=int)
            keys = [r for r in rounds
                    if all((cell, cmd, v, r) in total and (cell, cmd, v, r) in plug for v in ("base", "nf", "tun"))]
            if not keys:
                continue

            def diff(var, what):
                return [part((cell, cmd, var, r), what) - part((cell, cmd, "base", r), what) for r in keys]

            own = {v: st.median(part((cell, cmd, v, r), CHAINED[v]) for r in keys) for v in CHAINED}
            nt = [a - b for a, b in zip(diff("nf", "total"), diff("tun", "total"))]
            lo, hi = boot(nt)
            cols = [own["nf"], own["tun"]]
            for what in ("total", "bridge", "rest"):
                cols += [st.median(diff("nf", what)), st.median(diff("tun", what))]
            print(f"| {cell.replace('p', '').replace(' s', ' x ')} | {cmd} | {len(keys)} | "
                  + " | ".join(f"{c:.2f}" for c in cols)
                  + f" | {st.median(nt):+.2f} [{lo:+.2f}, {hi:+.2f}] |")


if __name__ == "__main__":
    main()
