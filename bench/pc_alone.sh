#!/bin/bash
# bench/pc_alone.sh: netfencectl's policy changes, for finding where their
# time goes and judging a change side by side.
#
#   sudo bench/pc_alone.sh [PODS [POLICIES [ROUNDS]]]     (500 10 20)
#
# Builds the bench topology (bench/lib.sh), attaches PODS pods, applies
# POLICIES policies (bench/gen.py), then runs ROUNDS x (apply, delete) of
# the noop and sel100 manifests (bench/run.sh's: a policy selecting no pod,
# one selecting every pod of ns1), each timed by bench/nfb_time. Prints the
# median and p90 of each. Without enforcement probes: bench/run.sh's
# policy phase is the figure of record.
# NFB_BIN_DIR=DIR measures DIR/netfencectl instead of bin/.
# NFB_BASE_BIN_DIR=DIR: side by side with DIR/netfencectl, the baseline:
# each round runs both, in alternating order, on the same state; prints
# both and the ratios of the medians.
set -u
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
pods=${1:-500} policies=${2:-10} rounds=${3:-20}
nfb_setup
nfb_base_bin netfencectl
ctls=("$NFB_NETFENCECTL" ${NFB_BASE:+"$NFB_BASE"})
nfb_fill "$pods" "$policies"
# shellcheck disable=SC2016
nfb_in node env NETFENCE_STATE="$NFB_DIR/state/state.json" bash -c '
	n=$1 t=$2 out=$3 gen=$4 errs=$5
	shift 5
	for ((i = 0; i < n; i++)); do
		for ((k = 0; k < $#; k++)); do
			b=$(( (i + k) % $# + 1 )) && ctl=${!b} && label=
			[ "$b" = 2 ] && label="base "
			for m in noop sel100; do
				for op in apply delete; do
					# (its warnings go to the log; a failure is its status)
					"$t" -o "$out" -l "$label$op $m" -- "$ctl" "$op" -f "$gen/$m.json" >/dev/null 2>>"$errs" ||
						echo "$label$op $m failed (see $errs)" >>"$errs.failed"
				done
			done
		done
	done' loop "$rounds" "$NFB_TIME" "$NFB_DIR/pc.tsv" "$NFB_DIR/gen" "$NFB_DIR/log/pc.err" "${ctls[@]}"
[ -s "$NFB_DIR/log/pc.err.failed" ] && nfb_die "netfencectl failed: $(tail -3 "$NFB_DIR/log/pc.err.failed")"
echo "netfencectl alone, $pods pods x $policies policies, $rounds rounds (ms):"
nfb_ab_summary "$NFB_DIR/pc.tsv" "apply noop" "apply sel100" "delete noop" "delete sel100"
