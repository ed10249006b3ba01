#!/usr/bin/env python3
"""report.py DIR: the Markdown report of one bench/run.sh invocation.

Reads DIR/{latency,policy,dataplane,ruleset,plugin-rusage}.tsv, machine.txt,
config.txt, profile-add-*.txt; prints Markdown on stdout and writes the
gnuplot data files DIR/lat-add.dat, lat-del.dat, dp.dat (bench/plot.gp).

Statistics: median and p90 (nearest rank) over the runs. "added" is the
per-round difference candidate - baseline (both from the same round, run
back to back in a random order), "ratio" the per-round quotient; their
median and p90 are over the rounds. The targets also get a 90 % bootstrap
interval (the rounds of each cell resampled, 1,000 times, fixed seed): what
the median could as well have been on this machine, which says whether a
growth of a few tenths of a millisecond is resolved at all. Exits 1 when
any timed command failed.
"""
import collections
import math
import os
import random
import re
import sys


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, math.ceil(p / 100 * len(xs)) - 1)
    return xs[k]


def med(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def boot(fn, lists, n=1000, seed=1):
    """90 % bootstrap interval of fn(*lists), each list resampled."""
    if not all(lists):
        return float("nan"), float("nan")
    rnd = random.Random(seed)
    vals = sorted(fn(*[[l[rnd.randrange(len(l))] for _ in l] for l in lists]) for _ in range(n))
    return vals[int(0.05 * n)], vals[int(0.95 * n) - 1]


# the growth lines compare cells measured one after the other
SEQUENTIAL = ("; cells measured minutes apart, so drift counts: bench/growth.sh interleaves"
              " the two cells' rounds")


def verdict(ci, limit=1.0):
    """a target's, by its interval: resolved below or above limit ms, or not"""
    return "met" if ci[1] < limit else ("**missed**" if ci[0] > limit else "not resolved")


def growth_interval(lo, hi):
    """... of med(hi) - med(lo): a growth target's"""
    return boot(lambda x, y: med(y) - med(x), [lo, hi])


def interval(lo_hi):
    return "90 %% interval %s .. %s" % (f2(lo_hi[0]), f2(lo_hi[1]))


def read_tsv(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                rows.append(line.split("\t"))
    return rows


def kv(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    return d


def f2(x):
    return "n/a" if x != x else ("%.2f" % x)


def parse_callgrind(path):
    """(Ir, sysCount, sysTime, sysCpuTime, function, object) per line of a
    callgrind_annotate listing; the first row is PROGRAM TOTALS."""
    rows = []
    if not os.path.exists(path):
        return rows
    num = r"([\d,]+|\.)(?:\s+\(\s*[\d.]+%\))?"
    pat = re.compile(r"^\s*" + r"\s+".join([num] * 4) + r"\s+(.*)$")
    for line in open(path):
        if line.startswith("-- Auto-annotated source"):
            break
        m = pat.match(line.rstrip("\n"))
        if not m:
            continue
        vals = [0 if g == "." else int(g.replace(",", "")) for g in m.groups()[:4]]
        rest = m.group(5)
        if rest.startswith("PROGRAM TOTALS"):
            if rows:
                continue
            rows.append(vals + ["TOTAL", ""])
            continue
        if not rows:
            continue
        obj = ""
        mo = re.search(r"\[(.*)\]\s*$", rest)
        if mo:
            obj = os.path.basename(mo.group(1))
            rest = rest[:mo.start()].strip()
        fn = rest.split(":")[-1]
        rows.append(vals + [fn, obj])
    return rows


def main():
    d = sys.argv[1]
    failed = 0
    cfg = kv(os.path.join(d, "config.txt"))
    mach = kv(os.path.join(d, "machine.txt"))
    out = []
    w = out.append
    w("# netfence benchmark (%s mode)\n" % cfg.get("mode", "?"))
    w("Machine: %s CPUs (%s), kernel %s; %s.\n" % (
        mach.get("nproc", "?"), mach.get("cpu", "?"), mach.get("kernel", "?"),
        ", ".join("%s %s" % (k, v) for k, v in mach.items() if k not in ("nproc", "kernel", "cpu"))))
    w("Sizes: pods {%s}, policies {%s}; %s rounds per latency cell, %s policy-change rounds, "
      "dataplane %s reps x %s s.\n" % (cfg.get("pods"), cfg.get("policies"), cfg.get("rounds"),
                                       cfg.get("policy_change_rounds"), cfg.get("dataplane_reps"),
                                       cfg.get("dataplane_secs")))

    # ---- latency
    lat = collections.defaultdict(dict)  # (pods, pol, cmd, variant) -> {round: ms}
    for row in read_tsv(os.path.join(d, "latency.tsv")):
        label, ms, rss, st = row
        p, s, cmd, v, r = label.split()
        if st != "0":
            failed += 1
        lat[(int(p[1:]), int(s[1:]), cmd, v)][int(r)] = float(ms)
    cells = sorted({(k[0], k[1]) for k in lat})
    pods = sorted({c[0] for c in cells})
    sizes = sorted({c[1] for c in cells})
    added, tun_added, diffs = {}, {}, {}
    if cells:
        w("## 1. CNI ADD and DEL latency (cnitool process, ms)\n")
        w("`base` = bridge + host-local, `nf` = + netfence, `fw` = + firewall (iptables backend), "
          "`tun` = + tuning (a trivial chained plugin: what being one more plugin in the chain costs). "
          "added = per-round variant - base; ratio = per-round nf / base.\n")
        w("| pods | policies | cmd | base median | nf median | nf added median | nf added p90 | "
          "nf ratio median | nf ratio p90 | fw added median | fw ratio median | tun added median |")
        w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for cmd in ("ADD", "DEL"):
            for (p, s) in cells:
                b = lat.get((p, s, cmd, "base"), {})
                n = lat.get((p, s, cmd, "nf"), {})
                fw = lat.get((p, s, cmd, "fw"), {})
                rs = sorted(set(b) & set(n))
                dn = [n[r] - b[r] for r in rs]
                rn = [n[r] / b[r] for r in rs]
                rf = sorted(set(b) & set(fw))
                df = [fw[r] - b[r] for r in rf]
                qf = [fw[r] / b[r] for r in rf]
                tu = lat.get((p, s, cmd, "tun"), {})
                dt = [tu[r] - b[r] for r in sorted(set(b) & set(tu))]
                added[(p, s, cmd)] = (med(dn), pct(dn, 90))
                diffs[(p, s, cmd)] = dn
                tun_added[(p, s, cmd)] = med(dt) if dt else None
                w("| %d | %d | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s |" % (
                    p, s, cmd, f2(med(list(b.values()))), f2(med(list(n.values()))), f2(med(dn)),
                    f2(pct(dn, 90)), f2(med(rn)), f2(pct(rn, 90)), f2(med(df)), f2(med(qf)),
                    f2(med(dt)) if dt else ""))
        w("")
        for cmd, fn in (("ADD", "lat-add.dat"), ("DEL", "lat-del.dat")):
            with open(os.path.join(d, fn), "w") as f:
                f.write("# pods " + " ".join("pol%d_med pol%d_p90" % (s, s) for s in sizes) + "\n")
                for p in pods:
                    f.write("%d" % p)
                    for s in sizes:
                        a = added.get((p, s, cmd), (float("nan"), float("nan")))
                        f.write(" %.3f %.3f" % a)
                    f.write("\n")
        # targets (reported, never asserted)
        pm = 100 if 100 in pods else pods[len(pods) // 2]
        sm = 100 if 100 in sizes else sizes[len(sizes) // 2]
        w("Targets (reported, not asserted):\n")
        for cmd in ("ADD", "DEL"):
            a = added.get((pm, sm, cmd))
            if a:
                t = tun_added.get((pm, sm, cmd))
                ci = boot(med, [diffs[(pm, sm, cmd)]])
                w("- %s at %d pods x %d policies: netfence adds %s ms (median; %s; target < 3 ms): %s%s" % (
                    cmd, pm, sm, f2(a[0]), interval(ci), verdict(ci, 3),
                    " (tuning, a trivial plugin, adds %s ms in the same rounds)" % f2(t) if t is not None else ""))
            lo, hi = added.get((pods[0], sm, cmd)), added.get((pods[-1], sm, cmd))
            if lo and hi and len(pods) > 1:
                g = hi[0] - lo[0]
                tl, th = tun_added.get((pods[0], sm, cmd)), tun_added.get((pods[-1], sm, cmd))
                tg = " (tuning, a trivial plugin, in the same rounds: %s -> %s, %+.2f ms)" % (
                    f2(tl), f2(th), th - tl) if tl is not None and th is not None else ""
                ci = growth_interval(diffs[(pods[0], sm, cmd)], diffs[(pods[-1], sm, cmd)])
                w("- %s, %d -> %d pods at %d policies: %+.2f ms (%s; target < 1 ms): %s%s" % (
                    cmd, pods[0], pods[-1], sm, g, interval(ci), verdict(ci), tg)
                  + SEQUENTIAL)
            lo, hi = added.get((pm, sizes[0], cmd)), added.get((pm, sizes[-1], cmd))
            if lo and hi and len(sizes) > 1:
                g = hi[0] - lo[0]
                ci = growth_interval(diffs[(pm, sizes[0], cmd)], diffs[(pm, sizes[-1], cmd)])
                w("- %s, %d -> %d policies at %d pods: %+.2f ms (%s; target < 1 ms): %s" % (
                    cmd, sizes[0], sizes[-1], pm, g, interval(ci), verdict(ci))
                  + SEQUENTIAL)
        w("")

    # ---- memory
    rus = collections.defaultdict(list)
    for row in read_tsv(os.path.join(d, "plugin-rusage.tsv")):
        label, ms, rss, st = row
        parts = label.split()
        if len(parts) >= 3 and parts[2] in ("MEMADD", "MEMDEL"):
            rus[(int(parts[0][1:]), int(parts[1][1:]), parts[2][3:])].append((float(ms), int(rss)))
    rs_rows = read_tsv(os.path.join(d, "ruleset.tsv"))[1:]
    if rus or rs_rows:
        w("## 4. Memory and ruleset size\n")
        w("Plugin peak RSS (getrusage RUSAGE_CHILDREN ru_maxrss of the netfence process alone, "
          "median of the runs) and the netfence tables in the kernel (without the measured pod).\n")
        rsd = {(int(r[0]), int(r[1])): r[2:] for r in rs_rows}
        w("| pods | policies | ADD peak RSS KiB | DEL peak RSS KiB | plugin ADD ms | `nft list` bytes | rules | sets | set+map elements | chains |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in sorted(set(k[:2] for k in rus) | set(rsd)):
            a = rus.get(c + ("ADD",), [])
            dl = rus.get(c + ("DEL",), [])
            r = rsd.get(c, ["", "", "", "", ""])
            w("| %d | %d | %s | %s | %s | %s |" % (
                c[0], c[1], "%d" % med([x[1] for x in a]) if a else "", "%d" % med([x[1] for x in dl]) if dl else "",
                f2(med([x[0] for x in a])) if a else "", " | ".join(r)))
        if rsd:
            pl = sorted({k[0] for k in rsd})
            sl = sorted({k[1] for k in rsd})
            s_top, p_top = sl[-1], pl[-1]
            if len(pl) > 1 and (pl[0], s_top) in rsd and (pl[-1], s_top) in rsd:
                a, b = rsd[(pl[0], s_top)], rsd[(pl[-1], s_top)]
                n = pl[-1] - pl[0]
                w("\nPer pod (from %d to %d pods at %d policies): %.0f bytes of `nft list`, %.2f rules, "
                  "%.2f set elements." % (pl[0], pl[-1], s_top, (int(b[0]) - int(a[0])) / n,
                                          (int(b[1]) - int(a[1])) / n, (int(b[3]) - int(a[3])) / n))
            if len(sl) > 1 and (p_top, sl[0]) in rsd and (p_top, sl[-1]) in rsd:
                a, b = rsd[(p_top, sl[0])], rsd[(p_top, sl[-1])]
                n = sl[-1] - sl[0]
                w("Per policy (from %d to %d policies at %d pods): %.0f bytes, %.2f rules, %.2f set elements, "
                  "%.2f sets." % (sl[0], sl[-1], p_top, (int(b[0]) - int(a[0])) / n,
                                  (int(b[1]) - int(a[1])) / n, (int(b[3]) - int(a[3])) / n,
                                  (int(b[2]) - int(a[2])) / n))
        dp_rs = read_tsv(os.path.join(d, "ruleset-dp.tsv"))
        if dp_rs:
            w("\nDataplane configurations (dp-peers policy with N ipBlock /32 peers, plus the largest policy set):\n")
            w("| config | `nft list` bytes | rules | sets | elements | chains |")
            w("|---|---:|---:|---:|---:|---:|")
            for r in dp_rs:
                w("| %s | %s |" % (r[0], " | ".join(r[1:])))
        w("")

    # ---- policy change
    pol = collections.defaultdict(dict)
    for row in read_tsv(os.path.join(d, "policy.tsv")):
        label, ms, rss, st = row
        p, s, op, kind, r = label.split()
        if st != "0":
            failed += 1
        pol[(p, s, op, kind)][int(r)] = float(ms)
    for row in read_tsv(os.path.join(d, "policy-verify.tsv")):
        if row[3] != "0":
            failed += 1
    if pol:
        w("## 2. Policy change: `netfencectl apply` / `delete` wall time (ms)\n")
        w("Each apply returns after the kernel transaction committed (enforcement verified by probes: "
          "see policy-verify.tsv). Baseline: `noop`, a policy selecting no pod (state load, compile, "
          "save, no kernel change), in the same rounds; ratio = per-round kind / noop.\n")
        w("| state | op | kind | median | p90 | ratio to noop median | ratio p90 |")
        w("|---|---|---|---:|---:|---:|---:|")
        for k in sorted(pol):
            p, s, op, kind = k
            v = pol[k]
            base = pol.get((p, s, op, "noop"), {})
            rr = [v[r] / base[r] for r in sorted(set(v) & set(base))]
            w("| %s pods, %s policies | %s | %s | **%s** | %s | %s | %s |" % (
                p[1:], s[1:], op, kind, f2(med(list(v.values()))), f2(pct(list(v.values()), 90)),
                f2(med(rr)), f2(pct(rr, 90))))
        w("\nKinds: `sel100` one policy selecting every pod of ns1 (100 of 500 pods in full mode); "
          "`bulk` %s policies at once (from the smallest set).\n" % (cfg.get("policies", "").split() or ["?"])[-1])

    # ---- dataplane
    dp = collections.defaultdict(dict)
    for row in read_tsv(os.path.join(d, "dataplane.tsv"))[1:]:
        c, r, g, cps, bad = row
        dp[c][int(r)] = (float(g), float(cps), int(bad))
    if dp:
        w("## 3. Dataplane: pod -> node -> external host\n")
        w("TCP throughput (iperf3, one stream) and new TCP connections per second (bench/connrate: "
          "connect + RST close in a loop), per configuration; ratio = per-rep config / `none` "
          "(no filtering), reps interleaved in a random order.\n")
        w("| config | Gbit/s median | throughput ratio median | ratio min | conn/s median | conn rate ratio median | ratio min |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        base = dp.get("none", {})

        def order(c):
            m = re.match(r"nf(\d+)", c)
            if c in ("none", "conntrack"):
                return (0, c != "none")
            return (1, int(m.group(1))) if m else (2, 0)
        with open(os.path.join(d, "dp.dat"), "w") as f:
            f.write("# config throughput_ratio conn_ratio\n")
            for c in sorted(dp, key=order):
                v = dp[c]
                rs = sorted(set(v) & set(base))
                tr = [v[r][0] / base[r][0] for r in rs]
                cr = [v[r][1] / base[r][1] for r in rs]
                w("| %s | %s | %s | %s | %.0f | %s | %s |" % (
                    c, f2(med([x[0] for x in v.values()])), f2(med(tr)), f2(min(tr) if tr else float("nan")),
                    med([x[1] for x in v.values()]), f2(med(cr)), f2(min(cr) if cr else float("nan"))))
                f.write('"%s" %.4f %.4f\n' % (c, med(tr), med(cr)))
        w("\n`conntrack`: no policy, connection tracking on in the node netns (one `ct state "
          "established,related accept` rule), as netfence (and any stateful filter or NAT) turns it on: "
          "the share of the gap that is conntrack's own.")
        w("`nfN`: netfence with %s policies in the state and the dp pod selected by a policy with N "
          "ipBlock /32 peers (the external host last); `linear1000`: no netfence, 1,000 `ip daddr X "
          "accept` rules in one forward chain (the match last, no conntrack shortcut).\n" %
          (cfg.get("policies", "").split() or ["?"])[-1])

    # ---- profile
    for cmd in ("add", "del"):
        prof = os.path.join(d, "profile-%s-inclusive.txt" % cmd)
        if not os.path.exists(prof):
            continue
        rows = parse_callgrind(prof)
        if not rows:
            continue
        w("## 5%s. Profile of one %s at the largest cell (callgrind)\n" % ("ab"[cmd == "del"], cmd.upper()))
        w("Inclusive cost of the plugin's phases: instructions (Ir) and, from "
          "`--collect-systime=nsec`, syscalls and their time (under valgrind, so only the shares count).\n")
        total = rows[0]
        w("| function | Ir | Ir % | syscalls | syscall time % |")
        w("|---|---:|---:|---:|---:|")
        keys = ["cmd_add", "cmd_del", "nf_state_load", "nf_state_load_fast", "nf_state_cache_decode",
                "nf_state_from_json", "txn_begin", "txn_begin_pod", "plan_pod_delta", "plan_compile",
                "txn_commit", "txn_commit_add", "txn_commit_del", "plan_render", "nft_apply", "nft_apply_diff",
                "nft_apply_delta", "plan_tightened_sources", "conntrack_flush_sources", "nf_state_save",
                "nf_state_save_pods", "nf_state_cache_encode", "ensure_set", "add_rule", "set_add_elem",
                "nf_selector_matches", "nf_policy_from_json"]
        seen = {}
        for r in rows[1:]:
            if r[4] in keys and r[4] not in seen:
                seen[r[4]] = r
        for k in keys:
            if k in seen:
                r = seen[k]
                w("| `%s` | %s | %.1f | %s | %.1f |" % (k, "{:,}".format(r[0]), 100.0 * r[0] / max(total[0], 1),
                                                     "{:,}".format(r[1]), 100.0 * r[2] / max(total[2], 1)))
        w("| total | %s | 100 | %s | 100 |" % ("{:,}".format(total[0]), "{:,}".format(total[1])))
        self_rows = parse_callgrind(os.path.join(d, "profile-%s-self.txt" % cmd))
        if self_rows:
            w("\nTop functions by own instructions:\n")
            w("| function | Ir % | object |")
            w("|---|---:|---|")
            for r in self_rows[1:13]:
                w("| `%s` | %.1f | %s |" % (r[4], 100.0 * r[0] / max(self_rows[0][0], 1), r[5]))
        w("")

    print("\n".join(out))
    if failed:
        print("\n**%d timed commands failed**" % failed)
        sys.exit(1)


if __name__ == "__main__":
    main()
