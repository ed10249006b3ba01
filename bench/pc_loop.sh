#!/bin/bash
# bench/pc_loop.sh: interleaved policy-change rounds. Runs inside the node
# netns (bench/run.sh starts it with `ip netns exec`).
#
#   pc_loop.sh OUT LABEL ROUNDS VERIFY KIND...
#
# KIND is noop, sel100 or bulk (manifests of bench/gen.py). Each round times
# `netfencectl apply -f KIND.json` ("LABEL apply KIND ROUND") and then the
# `netfencectl delete -f KIND.json` that undoes it ("LABEL delete KIND
# ROUND"), the kinds in a random order. VERIFY=1: right after the apply
# returns, a probe from the canary pod the policy selects (sel100: canary1,
# bulk: canary0) to the external host must fail, and succeed again after
# the delete; a failed check is a line "LABEL verify KIND ROUND" with
# status 1. Env: NFB_DIR, NFB_TIME, NFB_NETFENCECTL, NFB_PROBE, NFB_PFX.
set -u
out=$1 label=$2 rounds=$3 verify=$4
shift 4
export NETFENCE_STATE=$NFB_DIR/state/state.json
ctl() { # OP KIND ROUND
	"$NFB_TIME" -o "$out" -l "$label $1 $2 $3" -- "$NFB_NETFENCECTL" "$1" -f "$NFB_DIR/gen/$2.json" \
		>/dev/null 2>>"$NFB_DIR/log/ctl.err"
}
probe() { # KIND -> 0 when the canary reaches the external host
	local pod=p0
	[ "$1" = sel100 ] && pod=p1
	ip netns exec "$NFB_PFX-$pod" "$NFB_PROBE" connect tcp 203.0.113.80 80 400 >/dev/null 2>&1
}
check() { # KIND ROUND WANT(allow|deny)
	local got=deny
	probe "$1" && got=allow
	[ "$got" = "$3" ] && return 0
	printf '%s verify %s %s\t0\t0\t1\n' "$label" "$1" "$2" >>"$out"
	echo "pc_loop: $label round $2: $1 canary: expected $3, got $got" >&2
	fails=$((fails + 1))
}
fails=0
for ((r = 1; r <= rounds; r++)); do
	for k in $(shuf -e "$@"); do
		ctl apply "$k" "$r" || fails=$((fails + 1))
		[ "$verify" = 1 ] && [ "$k" != noop ] && check "$k" "$r" deny
		ctl delete "$k" "$r" || fails=$((fails + 1))
		[ "$verify" = 1 ] && [ "$k" != noop ] && check "$k" "$r" allow
	done
done
[ "$fails" = 0 ] || { echo "pc_loop: $fails failures" >&2; exit 1; }
