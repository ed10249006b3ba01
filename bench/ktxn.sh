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
# changes, no validation); one plain element added to a set in a tiny
# table of its own (inet nfb_probe: what any transaction costs in this
# netns); and one `jump` element to a kind's chain added to the dispatch
# map egress4 (the kernel then validates the chains the base chain
# reaches: the difference to the plain element). Prints the medians and
# the node's chain count. (Every commit also walks every chain of the
# netns, nf_tables_commit's "step 2": bench/kasshard.sh measures what 500
# anti-spoofing chains alone add to a commit.)
set -u
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
# shellcheck source=bench/scratch.sh
. bench/scratch.sh # nft_batch_us
pods=${1:-500} policies=${2:-100} reps=${3:-15}
command -v strace >/dev/null || nfb_die "needs strace"
nfb_setup
nfb_fill "$pods" "$policies"
nfb_rejudge_wait
kind=$(nfb_in node nft list chains inet | awk '$1 == "chain" && $2 ~ /^kind_/ { print $2; exit }')
[ -n "$kind" ] || nfb_die "no kind's chain: no pod selected (try more pods)"
chains=$(nfb_in node nft list chains | grep -c '^[[:space:]]*chain ')
ms() { # TABLE SET FORMAT: the median ms of REPS one-element transactions
	local k
	for ((k = 1; k <= reps; k++)); do
		# shellcheck disable=SC2059
		nft_batch_us "$NFB_NODE" add element inet "$1" "$2" "{ $(printf "$3" "$k") }" ||
			nfb_die "nft add element"
	done | sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] / 1000 }'
}
# one untimed transaction first: the first of a fresh node is slower
nfb_in node nft add element inet netfence rejudge4 "{ 10.251.1.1 }" || nfb_die "nft add element"
plain=$(ms netfence rejudge4 "10.251.0.%d")
nfb_in node nft "add table inet nfb_probe; add set inet nfb_probe s { type ipv4_addr; }; add element inet nfb_probe s { 10.252.1.1 }" ||
	nfb_die "nft add table"
own=$(ms nfb_probe s "10.252.0.%d")
jump=$(ms netfence egress4 "10.250.0.%d : jump $kind")
echo "pods=$pods policies=$policies chains=$chains: one plain element $plain ms (netfence's table), $own ms (a table of its own); one jump element $jump ms (the batch's sendmsg, median of $reps)"
