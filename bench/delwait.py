#!/usr/bin/env python3
"""Where the bridge plugin's DEL waits: the table of a bench/delwait.sh run.

Usage: bench/delwait.py TRACE LATENCY

TRACE is the text of the tracefs instance's trace_pipe: sched_switch events
of the bridge plugin's threads (a thread blocking in state D, followed by
its kernel stack; a thread getting the CPU back) and the markers "nfb DEL
VARIANT ROUND" / "nfb END" around each DEL. LATENCY is lat_loop.sh's file
("CELL ADD|DEL VARIANT ROUND<TAB>ms..."). For each DEL, the time bridge's
threads were blocked is summed by where they blocked: rcu_barrier,
synchronize_rcu / synchronize_rcu_expedited (the first of those on the
stack), or elsewhere. Prints, per variant, the mean and median of each
per DEL, the DEL's median time, and the mean per-round difference to the
baseline ("base") with a 90 % bootstrap interval over rounds; and netfence's
(nf) per-round difference to tuning's (tun), a chained plugin that does
nothing.
"""
import collections
import random
import re
import statistics as st
import sys

WAITS = ("rcu_barrier", "synchronize_rcu_expedited", "synchronize_rcu")
EVENT = re.compile(r"\s(\d+\.\d+): (\w+): (.*)$")
SWITCH = re.compile(r"prev_comm=(.*) prev_pid=(\d+) .* prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+)")


def load_trace(path):
    """{(variant, round): Counter(where -> ms)}"""
    dels = {}
    cur = None
    blocked = {}  # pid -> (t, where)
    pending = None  # (pid, t): a D switch whose stack comes next
    stack = []

    def close_stack():
        nonlocal pending, stack
        if pending:
            where = next((f for f in stack if f in WAITS), "other")
            if where == "synchronize_rcu_expedited":
                where = "synchronize_rcu"
            blocked[pending[0]] = (pending[1], where)
        pending, stack = None, []

    with open(path) as f:
        for line in f:
            if line.startswith(" => "):
                if pending:
                    stack.append(line[4:].strip())
                continue
            m = EVENT.search(line)
            if not m:
                continue
            t, name, rest = float(m.group(1)), m.group(2), m.group(3)
            if name == "tracing_mark_write":
                close_stack()
                words = rest.split()
                if words[:2] == ["nfb", "DEL"] and len(words) == 4:
                    cur = (words[2], int(words[3]))
                    dels[cur] = collections.Counter()
                    blocked = {}
                elif words[:2] == ["nfb", "END"]:
                    cur = None
                continue
            if name == "<stack trace>" or rest.startswith("<stack trace>"):
                continue
            if name != "sched_switch":
                continue
            close_stack()
            s = SWITCH.search(rest)
            if not s or cur is None:
                continue
            prev, ppid, state, nxt, npid = s.group(1), int(s.group(2)), s.group(3), s.group(4), int(s.group(5))
            if nxt == "bridge" and npid in blocked:
                t0, where = blocked.pop(npid)
                dels[cur][where] += (t - t0) * 1000
            if prev == "bridge" and "D" in state:
                pending = (ppid, t)
    return dels


def load_latency(path):
    lat = {}
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            label = fields[0].split()
            if len(label) == 4 and label[1] == "DEL":
                lat[(label[2], int(label[3]))] = float(fields[1])
    return lat


def paired(dels, lat, rounds, v, than, rng):
    """Cells "mean [90 % interval]" of v's per-round difference to than's:
    time blocked in rcu_barrier, then the whole DEL."""
    cells = []
    for get in (lambda k: dels[k]["rcu_barrier"], lambda k: lat[k]):
        d = [get((v, r)) - get((than, r)) for r in rounds]
        means = sorted(st.mean(rng.choices(d, k=len(d))) for _ in range(1000))
        cells.append(f"{st.mean(d):+.2f} [{means[50]:+.2f}, {means[949]:+.2f}]")
    return cells


def main():
    dels = load_trace(sys.argv[1])
    lat = load_latency(sys.argv[2])
    variants = sorted({v for v, _ in dels}, key=lambda v: (v != "base", v))
    rounds = sorted({r for _, r in dels if all((v, r) in dels and (v, r) in lat for v in variants)})
    if not rounds or "base" not in variants:
        sys.exit("delwait.py: no complete round with a baseline in the trace")
    rng = random.Random(1)
    print(f"# Where bridge's DEL waits ({len(rounds)} rounds)\n")
    print("ms per DEL, mean / median over the rounds; \"- base\": the mean of the per-round")
    print("difference to the baseline's DEL (bridge first in the chain), with its 90 % bootstrap interval.\n")
    print("| variant | blocked in rcu_barrier | synchronize_rcu | blocked elsewhere | whole DEL (median) "
          "| rcu_barrier - base | whole DEL - base |")
    print("|---|---|---|---|---|---|---|")
    for v in variants:
        cell = {w: [dels[(v, r)][w] for r in rounds] for w in ("rcu_barrier", "synchronize_rcu", "other")}
        row = [f"{st.mean(x):.2f} / {st.median(x):.2f}" for x in cell.values()]
        row.append(f"{st.median(lat[(v, r)] for r in rounds):.2f}")
        row += ["", ""] if v == "base" else paired(dels, lat, rounds, v, "base", rng)
        print(f"| {v} | " + " | ".join(row) + " |")
    if "nf" in variants and "tun" in variants:
        # netfence against a chained plugin that does nothing, round by round
        row = paired(dels, lat, rounds, "nf", "tun", rng)
        print(f"\nnf - tun, per round: rcu_barrier {row[0]}, whole DEL {row[1]}")


if __name__ == "__main__":
    main()
