#!/bin/bash
# bench/plugin_alone.sh: the plugin's own ADD and DEL, without libcni.
#
#   sudo bench/plugin_alone.sh [PODS [POLICIES [ROUNDS]]]     (100 100 30)
#
# Builds the bench topology (bench/lib.sh), attaches PODS pods through
# cnitool, applies POLICIES policies (bench/gen.py), attaches the measured
# pod, then runs ROUNDS x (DEL, ADD) of bin/netfence directly with that
# pod's prevResult, 50 ms apart (so that one call's left-overs, such as
# the RCU grace period a DEL's child waits out, do not land on the next),
# each ADD once the DEL's child (its conntrack cleanup, about 1 s later)
# has ended,
# each timed by bench/nfb_time. Prints the median and p90 of each. Used to
# find where the plugin spends its time (see docs/performance.md); the
# figures of record are bench/run.sh's, against a baseline.
# NFB_BIN_DIR=DIR measures DIR/netfence instead of bin/.
# NFB_BASE_BIN_DIR=DIR: side by side with DIR/netfence, the baseline: each
# round runs DEL+ADD with both, in alternating order, on the same state;
# prints both and the ratios of the medians.
# NFB_REPLICA=1: a pod of the measured pod's kind (app=bench) is attached
# first, so that the ADD measured is a replica's (its kind's chain exists)
# instead of the first of its kind's.
# NFB_IDLE_KINDS=N: the plugin's "idleKindChains" (0: the DEL deletes the
# kind's chain, and the ADD makes it anew: the first pod of its kind's).
# NFB_PHASES=1: the plugin also reports its phases (NETFENCE_PHASES=1: ms
# from the start of main at which each phase ended; netconf/phase.h); prints
# the median of each, per command (and build).
set -u
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
pods=${1:-100} policies=${2:-100} rounds=${3:-30}
nfb_setup
nfb_base_bin netfence
plugins=("$NFB_PLUGIN" ${NFB_BASE:+"$NFB_BASE"})
nfb_pod_netns m-nf
nfb_fill "$pods" "$policies"
if [ -n "${NFB_REPLICA:-}" ]; then # a pod of the measured pod's kind, attached first
	nfb_pod_netns m-tw
	# shellcheck disable=SC2046
	nfb_in node env $(nfb_cni_env bin) CNI_ARGS="$(nfb_pod_args ns0 bench-tw app:bench)" "$NFB_CNITOOL" add nfb-nf \
		"/var/run/netns/$NFB_PFX-m-tw" >/dev/null || nfb_die "cnitool add of the measured pod's twin"
fi
args=$(nfb_pod_args ns0 bench-nf app:bench)
# shellcheck disable=SC2046
nfb_in node env $(nfb_cni_env bin) CNI_ARGS="$args" "$NFB_CNITOOL" add nfb-nf "/var/run/netns/$NFB_PFX-m-nf" \
	>"$NFB_DIR/res.json" || nfb_die "cnitool add of the measured pod"
jq -nc --slurpfile r "$NFB_DIR/res.json" --arg s "$NFB_DIR/state/state.json" --arg k "${NFB_IDLE_KINDS:-}" \
	'{cniVersion: "1.0.0", name: "nfb-nf", type: "netfence", stateFile: $s, prevResult: $r[0]}
	 + (if $k == "" then {} else {idleKindChains: ($k | tonumber)} end)' >"$NFB_DIR/conf.json"
cid=$(jq -r '.pods[] | select(.name == "bench-nf") | .containerID' "$NFB_DIR/state/state.json")
[ -n "$cid" ] || nfb_die "the measured pod has no record"
# shellcheck disable=SC2016
nfb_in node env CNI_CONTAINERID="$cid" CNI_NETNS="/var/run/netns/$NFB_PFX-m-nf" CNI_IFNAME=eth0 \
	CNI_PATH=/nonexistent CNI_ARGS="$args" NETFENCE_PHASES="${NFB_PHASES:-}" bash -c '
	n=$1 t=$2 out=$3 conf=$4 errs=$5 state=$6
	shift 6
	for ((i = 0; i < n; i++)); do
		# with a baseline: this round in the order i, i+1, ... of the binaries
		for ((k = 0; k < $#; k++)); do
			b=$(( (i + k) % $# + 1 )) && plugin=${!b} && label=
			[ "$b" = 2 ] && label="base "
			for c in DEL ADD; do
				sleep 0.05
				# the ADD gets the address the DEL freed: let the DEL'"'"'s
				# child end first (its conntrack cleanup, which the ADD
				# would do else; then it closes the netlink socket it kept)
				for ((w = 0; w < 50; w++)); do
					compgen -G "$state.conntrack-*" >/dev/null || pgrep -x netfence >/dev/null || break
					sleep 0.1
				done
				CNI_COMMAND=$c "$t" -o "$out" -l "$label$c" -- "$plugin" <"$conf" >/dev/null 2>"$errs.one" ||
					echo "$c failed" >&2
				sed "s/^/$label$c: /" "$errs.one" >>"$errs"
			done
		done
	done' loop "$rounds" "$NFB_TIME" "$NFB_DIR/t.tsv" "$NFB_DIR/conf.json" "$NFB_DIR/log/alone.err" \
	"$NFB_DIR/state/state.json" "${plugins[@]}"
grep " phases (ms): " "$NFB_DIR/log/alone.err" >"$NFB_DIR/phases.txt"
grep -v " phases (ms): " "$NFB_DIR/log/alone.err" >"$NFB_DIR/log/alone.err2"
[ -s "$NFB_DIR/log/alone.err2" ] && nfb_die "plugin calls failed: $(tail -3 "$NFB_DIR/log/alone.err2")"
echo "plugin alone, $pods pods x $policies policies, $rounds rounds (ms):"
nfb_ab_summary "$NFB_DIR/t.tsv" ADD DEL
if [ -s "$NFB_DIR/phases.txt" ]; then
	echo "phases: median ms from the start of main at which each ended ($rounds calls each):"
	python3 - "$NFB_DIR/phases.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    who, _, rest = line.partition(": netfence: ")
    cmd, _, ph = rest.partition(" phases (ms): ")
    runs.setdefault(who.strip(), []).append([p.split("=") for p in ph.split()])
for who, calls in sorted(runs.items()):
    names = [n for n, _ in calls[0]]
    med = []
    for n in names:
        v = [float(t) for c in calls for m, t in c if m == n]
        med.append("%s %.2f" % (n, statistics.median(v)))
    print("  %-9s %s" % (who, ", ".join(med)))
PY
fi
