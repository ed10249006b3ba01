#!/bin/bash
# bench/growth_node.sh: one node of bench/growth.sh, which starts two.
#
#   growth_node.sh NAME PODS POLICIES CTLDIR OUT
#
# Opens the FIFOs CTLDIR/NAME.in (commands) and CTLDIR/NAME.out (replies),
# builds its own node (bench/lib.sh: own netns prefix nfb-<pid>-*, own temp
# dir, state, bridge, IPAM), attaches PODS pods, applies POLICIES policies
# (bench/gen.py), replies "ready", then serves until "quit" or end of input:
#   round R   one round of bench/lat_loop.sh (ADD then DEL of the measured
#             pod of each variant of NFB_VARIANTS, random order), labelled
#             "pPODS sPOLICIES ... R", appended to OUT; replies ok or fail
# Its EXIT trap (nfb_cleanup) removes all it made, also when killed.
set -u
name=$1 pods=$2 policies=$3 ctl=$4 out=$5
cd "$(dirname "$0")/.." || exit 2
exec 3<"$ctl/$name.in" 4>"$ctl/$name.out" || exit 2
. bench/lib.sh
nfb_setup
nfb_variant_node "$pods" "$policies"
echo ready >&4
while read -r cmd r <&3; do
	case $cmd in
	round)
		if nfb_in node bash bench/lat_loop.sh "$out" "p$pods s$policies" 1 0 "$NFB_PFX" "$r"; then
			echo ok >&4
		else
			echo "fail: $(tail -3 "$NFB_DIR/log/lat.err" | tr '\n' ' ')" >&4
		fi
		;;
	quit) break ;;
	*) echo "fail: unknown command $cmd" >&4 ;;
	esac
done
