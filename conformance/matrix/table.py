#!/usr/bin/env python3
"""table.py: print a matrix scenario's truth tables and count mismatches.

    table.py EXPECTED OBSERVED [TITLE]

EXPECTED: oracle.py expect lines   SRC DST PROTO PORT FAMILY ADDR VERDICT
OBSERVED: one line per probe       SRC DST PROTO PORT FAMILY ok|fail [REASON...]

Tables as the Kubernetes e2e netpol suite prints them: rows = sources,
columns = destinations, "." = connected, "X" = blocked. Loopback cells (a pod
to itself) are ignored, as with the e2e suite's ignoreLoopback, and shown as
"-" in the expected table. Port/protocol/family combinations whose expected
tables are identical and fully observed as expected are printed once. For a
combination with a mismatch: the expected table, the observed one, and a
comparison where "!" marks a mismatch, then one MISMATCH line per cell.
Exit status 1 if any cell mismatches (or is missing).
"""
import sys


def short(key):
    return key.replace("-", "/", 1) if "-" in key else key


def main():
    exp_path, obs_path = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else ""
    exp, obs, addr = {}, {}, {}
    rows, cols, combos = [], [], []
    for line in open(exp_path):
        src, dst, proto, port, fam, a, v = line.split()
        combo = (proto, int(port), fam)
        exp[(src, dst) + combo] = v
        addr[(dst, fam)] = a
        if src not in rows:
            rows.append(src)
        if dst not in cols:
            cols.append(dst)
        if combo not in combos:
            combos.append(combo)
    for line in open(obs_path):
        f = line.split(None, 6)
        src, dst, proto, port, fam, res = f[:6]
        obs[(src, dst, proto, int(port), fam)] = (res, f[6].strip() if len(f) > 6 else "")

    def cell(kind, src, dst, combo):
        k = (src, dst) + combo
        v = exp[k]
        o = obs.get(k, ("missing", ""))[0]
        if kind == "exp":
            return {"allow": ".", "deny": "X", "loopback": "-"}[v]
        if kind == "obs":
            return {"ok": ".", "fail": "X"}.get(o, "?")
        if v == "loopback":
            return "."
        return "." if (v == "allow") == (o == "ok") else "!"

    def table(kind, combo):
        w = max(len(short(c)) for c in cols) + 1
        out = ["      " + "".join(short(c).rjust(w) for c in cols)]
        for r in rows:
            out.append(short(r).ljust(6) + "".join(cell(kind, r, c, combo).rjust(w) for c in cols))
        return "\n".join(out)

    def name(combo):
        return "%s/%d IPv%s" % combo

    bad = 0
    mism_lines = []
    groups = {}  # expected table text -> combos, for the combos that fully match
    total = 0
    for combo in combos:
        cells_bad = []
        for r in rows:
            for c in cols:
                total += 1
                if cell("cmp", r, c, combo) == "!":
                    cells_bad.append((r, c))
        if not cells_bad:
            groups.setdefault(table("exp", combo), []).append(combo)
            continue
        bad += len(cells_bad)
        print("%s: MISMATCH in %d cell(s)" % (name(combo), len(cells_bad)))
        print("expected:\n" + table("exp", combo))
        print("observed:\n" + table("obs", combo))
        print("comparison (! = mismatch):\n" + table("cmp", combo))
        for r, c in cells_bad:
            k = (r, c) + combo
            res, why = obs.get(k, ("missing", ""))
            mism_lines.append("MISMATCH %s %s -> %s (%s): expected %s, got %s%s" % (
                name(combo), short(r), short(c), addr[(c, combo[2])], exp[k],
                "connected" if res == "ok" else "blocked" if res == "fail" else res,
                " [%s]" % why if why and res != "ok" else ""))
    for text, cs in groups.items():
        print("%s: as expected" % ", ".join(name(c) for c in cs))
        print(text)
    for m in mism_lines:
        print(m)
    print("%s%d probes, %d mismatches" % (title + ": " if title else "", total, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
