#!/bin/bash
# bench/flood.sh: what the node's bridge forwards of the pods' IPv6, by
# type and by port, with no ADD going on and per ADD+DEL.
#
#   sudo bench/flood.sh [PODS [ROUNDS [SECS]]]       (500 20 10)
#
# On the bench topology (bench/lib.sh) with PODS pods and 100 policies
# (bench/gen.py: they select all pods but the two canaries), a counter per
# ICMPv6 type at the bridge's forward hook counts the copies the bridge
# forwards (a packet flooded to N ports is N copies):
#   idle      per second, over 3 x SECS s with no ADD or DEL: what the
#             pods send by themselves (router solicitations, retried with
#             a backoff for as long as no router answers: RFC 7559)
#   base, nf  per ADD+DEL of that variant's measured pod (ROUNDS rounds of
#             bench/lat_loop.sh), from the measured pod's port and from the
#             idle pods' ports
# netfence drops all IPv6 of a selected pod that has no IPv6 address (the
# bench's pods have none) at its veth, so the idle pods' solicitations
# should not reach the bridge, nor netfence's measured pod's once its ADD
# has made its chain (docs/performance.md, "The growth with pods inside
# the chain"). NFB_BIN_DIR=DIR measures another build.
set -u
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
pods=${1:-500} rounds=${2:-20} secs=${3:-10}
for a in "$pods" "$rounds" "$secs"; do
	[[ $a =~ ^[1-9][0-9]*$ ]] || { echo "bench/flood.sh: not a positive number: '$a'" >&2; exit 2; }
done
nfb_setup
NFB_VARIANTS="base nf" nfb_variant_node "$pods" 100
idle=$(nfb_in node ip -o link show master nfbr0 | awk -F': ' '{print $2}' | cut -d@ -f1 | sed 's/.*/"&"/' | paste -sd,)
[ -n "$idle" ] || nfb_die "no port on the bridge"
types=(nd-router-solicit mld2-listener-report nd-neighbor-solicit nd-router-advert)
{
	echo "table bridge nfb_flood {"
	echo "  set idle { type ifname; elements = { $idle } }"
	echo "  chain f { type filter hook forward priority 0;"
	for side in "" "!= "; do
		for t in "${types[@]}"; do echo "    iifname $side@idle icmpv6 type $t counter"; done
		echo "    iifname $side@idle meta protocol ip6 counter"
	done
	echo "  }"
	echo "}"
} | nfb_in node nft -f - || nfb_die "the counters' table"
counts() { nfb_in node nft list table bridge nfb_flood | grep -o 'packets [0-9]*' | cut -d' ' -f2 | paste -sd' '; }
# show LABEL DIVISOR BEFORE AFTER: the copies from the idle pods' ports
# and (but for "idle") from the measured pod's, / DIVISOR
show() {
	python3 - "$@" "${types[@]}" <<'PY'
import sys
label, div, a, b = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
names = sys.argv[5:] + ["all IPv6"]
d = [(int(y) - int(x)) / div for x, y in zip(a, b)]
n = len(names)
for side, vals in (("idle pods' ports", d[:n]), ("measured pod's port", d[n:])):
    if label.startswith("idle") and side != "idle pods' ports":
        continue
    print("%-16s %-20s %s" % (label, side, "  ".join("%s %.1f" % (k, v) for k, v in zip(names, vals))))
PY
}
echo "bench/flood.sh: $pods pods ($(nfb_in node nft list ruleset | grep -c 'chain as_') with an anti-spoofing chain), copies the bridge forwards"
for _ in 1 2 3; do
	a=$(counts)
	sleep "$secs"
	show "idle, per s" "$secs" "$a" "$(counts)"
done
for v in base nf; do
	a=$(counts)
	NFB_VARIANTS=$v nfb_in node bash bench/lat_loop.sh "$NFB_DIR/t.tsv" "f$v" "$rounds" 0 "$NFB_PFX" ||
		nfb_die "rounds failed: $(tail -3 "$NFB_DIR/log/lat.err")"
	show "$v, per round" "$rounds" "$a" "$(counts)"
done
