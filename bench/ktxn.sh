#!/bin/bash
# bench/ktxn.sh: what one nftables transaction costs the kernel on a node
# filled by netfence, as the pods grow.
#
#   sudo bench/ktxn.sh [PODS [POLICIES [REPS]]]      (500 100 15)
#
# Builds the bench topology (bench/lib.sh) with PODS pods and POLICIES
# policies, then REPS times each, timed by the batch's sendmsg (the last
# one of the `nft` process, under strace -T; nf_tables commits inside
# it): one plain element added to netfence's set rejudge4 (no rule
# changes, no validation), and one `jump` element to a kind's chain added
# to the dispatch map egress4 (the kernel then validates the chains the
# base chain reaches). Prints the medians and the node's chain count.
# Every commit walks every chain of every table of the netns to publish
# the next rule generation (nf_tables_commit, "step 2"), so with a
# netdev anti-spoofing chain per pod even a plain element costs more as
# pods are added; the jump element's extra is the validation.
set -u
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
pods=${1:-500} policies=${2:-100} reps=${3:-15}
command -v strace >/dev/null || nfb_die "needs strace"
nfb_setup
nfb_fill "$pods" "$policies"
nfb_rejudge_wait
kind=$(nfb_in node nft list chains inet | awk '$1 == "chain" && $2 ~ /^kind_/ { print $2; exit }')
[ -n "$kind" ] || nfb_die "no kind's chain: no pod selected (try more pods)"
chains=$(nfb_in node nft list chains | grep -c '^[[:space:]]*chain ')
ms() { # SET FORMAT: the median ms of REPS one-element transactions
	local k
	for ((k = 1; k <= reps; k++)); do
		# shellcheck disable=SC2059
		strace -qq -f -T -e trace=sendmsg -o "$NFB_DIR/st" \
			ip netns exec "$NFB_NODE" nft add element inet netfence "$1" "{ $(printf "$2" "$k") }" ||
			nfb_die "nft add element"
		sed -n 's/.*<\([0-9.]*\)>$/\1/p' "$NFB_DIR/st" | tail -1 | awk '{ printf "%d\n", $1 * 1000000 }'
	done | sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] / 1000 }'
}
# one untimed transaction first: the first of a fresh node is slower
nfb_in node nft add element inet netfence rejudge4 "{ 10.251.1.1 }" || nfb_die "nft add element"
plain=$(ms rejudge4 "10.251.0.%d")
jump=$(ms egress4 "10.250.0.%d : jump $kind")
echo "pods=$pods policies=$policies chains=$chains: one plain set element $plain ms, one jump element $jump ms (the batch's sendmsg, median of $reps)"
