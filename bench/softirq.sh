#!/bin/bash
# bench/softirq.sh: the CPU time the kernel spends around a pod's ADD and
# DEL as the bridge fills, which lands on whatever runs next on the node.
#
#   sudo bench/softirq.sh [PODS [ROUNDS]]       (500 30)
#
# On the bench topology (bench/lib.sh, the baseline network: bridge +
# host-local, no netfence in the measured chain), ROUNDS ADD+DEL of the
# baseline's measured pod, with the machine's CPU time (/proc/stat: user,
# system, softirq; all CPUs, so run it on an otherwise idle machine) read
# around them, per ADD+DEL:
#   1 pod            the bridge has one other port
#   PODS pods        PODS other ports; IPv6 on everywhere (the default)
#   ... no IPv6 m    IPv6 off in the measured pod's netns
#   ... no IPv6      and off in every other pod's
# When a pod's interface comes up, its IPv6 stack sends neighbour
# discovery and MLD reports, and bridge's ADD sends a gratuitous ARP; the
# bridge floods them to every port, and each copy is received in a pod's
# netns: softirq work on the node's CPUs that no plugin asked for, during
# the next plugin of the chain (docs/performance.md, "After 29d6ead").
# The lines run one after the other, and the idle pods' own router
# solicitations (retried with a backoff while no router answers, each
# flooded to every port) decay meanwhile: bench/flood.sh counts them.
set -u
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
pods=${1:-500} rounds=${2:-30}
nfb_setup
export NFB_TIME NFB_CNITOOL NFB_PFX
nfb_pod_netns m-base
python3 bench/gen.py "$NFB_DIR/gen" --sizes 10 --peers 10 >/dev/null || nfb_die "gen.py"
nfb_ctl apply -f "$NFB_DIR/gen/namespaces.json" >/dev/null || nfb_die "apply namespaces"
hz=$(getconf CLK_TCK)
cpu() { # user system softirq, in ticks
	local _c u _n s rest
	read -r _c u _n s _ _ _ rest </proc/stat
	echo "$u $s $(echo "$rest" | cut -d' ' -f1)"
}
measure() {
	local label=$1 a b
	a=$(cpu)
	NFB_VARIANTS=base nfb_in node bash bench/lat_loop.sh "$NFB_DIR/t.tsv" "$label" "$rounds" 0 "$NFB_PFX" ||
		nfb_die "rounds failed: $(tail -3 "$NFB_DIR/log/lat.err")"
	b=$(cpu)
	python3 - "$label" "$rounds" "$hz" "$a" "$b" "$NFB_DIR/t.tsv" <<'PY'
import statistics, sys
label, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a, b = [list(map(int, x.split())) for x in sys.argv[4:6]]
ms = [(y - x) * 1000 / hz / rounds for x, y in zip(a, b)]
t = {"ADD": [], "DEL": []}
for line in open(sys.argv[6]):
    f = line.split("\t")
    if f[0].startswith(label + " "):
        t[f[0].split()[-3]].append(float(f[1]))
print("%-22s user %5.1f  system %5.1f  softirq %5.2f ms per ADD+DEL (all CPUs);  cnitool ADD %5.2f  DEL %5.2f ms (median)" % (
    label, ms[0], ms[1], ms[2], statistics.median(t["ADD"]), statistics.median(t["DEL"])))
PY
}
echo "bench/softirq.sh: $rounds ADD+DEL of bridge + host-local per line, $(nproc) CPUs, kernel $(uname -r)"
measure "p1"
nfb_pods_grow "$pods"
measure "p$pods"
nfb_in m-base sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || nfb_die sysctl
measure "p$pods-noipv6-measured"
for ((j = 0; j < pods; j++)); do
	nfb_in "p$j" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || nfb_die sysctl
done
measure "p$pods-noipv6-all"
