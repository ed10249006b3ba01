#!/usr/bin/env python3
"""Normalizes `nft list ruleset` text so that two rulesets holding the same
objects compare equal whatever order they were created in: the sets, maps
and chains of each table are sorted by name (rules keep their order inside
a chain, where it matters), set elements are sorted, counters are zeroed.

  nft list ruleset | nft_normalize.py
"""
import re
import sys


def blocks(lines):
    """Splits a table body into (header, [lines]) blocks."""
    out, cur, depth = [], None, 0
    for line in lines:
        s = line.strip()
        if not s:
            continue
        if depth == 0 and s.endswith("{"):
            cur = (s, [])
            depth = 1
            continue
        if s == "}" and depth == 1:
            out.append(cur)
            cur, depth = None, 0
            continue
        if cur is not None:
            cur[1].append(s)
    return out


def norm_block(body):
    text = "\n".join(body)
    # elements = { a, b,\n c } -> sorted, one line
    def elems(m):
        items = [e.strip() for e in m.group(1).replace("\n", " ").split(",") if e.strip()]
        return "elements = { " + ", ".join(sorted(items)) + " }"
    text = re.sub(r"elements = \{(.*?)\}", elems, text, flags=re.S)
    text = re.sub(r"counter packets \d+ bytes \d+", "counter", text)
    return text.split("\n")


def main():
    tables, cur = [], None
    depth = 0
    for line in sys.stdin:
        s = line.rstrip("\n")
        if depth == 0 and s.startswith("table "):
            cur = [s, []]
            tables.append(cur)
            depth = 1
            continue
        if depth == 1 and s == "}":
            depth = 0
            continue
        if cur is not None:
            cur[1].append(s)
    for header, body in sorted(tables, key=lambda t: t[0]):
        print(header)
        for bh, bl in sorted(blocks(body), key=lambda b: b[0]):
            print("  " + bh)
            for l in norm_block(bl):
                print("    " + l)


main()
