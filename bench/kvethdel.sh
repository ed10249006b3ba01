#!/bin/bash
# bench/kvethdel.sh: what a veth's deletion (the bridge plugin's DEL) costs
# with netdev ingress chains around, as netfence's anti-spoofing chains are
# (docs/performance.md, "What is left").
#
#   sudo bench/kvethdel.sh [VETHS [REPS]]      (300 10)
#
# In a scratch network namespace of its own, the median time of
# `ip link del` of a fresh veth, REPS times each:
#   plain      VETHS other veths, no nftables
#   chains     the same veths, each with a netdev ingress chain (table netdev)
#   unhooked   a veth whose own ingress chain was deleted just before (what
#              a netfence DEL followed by bridge's DEL does), chains as above
#   kept       a veth whose own ingress chain is still there (the kernel
#              unhooks it), chains as above
# Removes the namespace on exit.
set -eu
n=${1:-300} reps=${2:-10}
# shellcheck source=bench/scratch.sh
. "$(dirname "$0")/scratch.sh"
scratch_setup nfkd
for ((i = 0; i < n; i++)); do
	ip -n "$ns" link add "v$i" type veth peer name "p$i"
	ip -n "$ns" link set "v$i" up
done
del_ms() { # MODE: the median ms of REPS deletions
	local mode=$1 k s e
	for ((k = 1; k <= reps; k++)); do
		ip -n "$ns" link add "x$k" type veth peer name "y$k"
		ip -n "$ns" link set "x$k" up
		if [ "$mode" = kept ]; then
			ip netns exec "$ns" nft add chain netdev kd "kx$k" "{ type filter hook ingress device x$k priority -500; }"
			ip netns exec "$ns" nft add rule netdev kd "kx$k" ip saddr 10.0.0.1 accept
		fi
		if [ "$mode" = unhooked ]; then
			ip netns exec "$ns" nft add chain netdev kd "cx$k" "{ type filter hook ingress device x$k priority -500; }"
			ip netns exec "$ns" nft delete chain netdev kd "cx$k"
		fi
		s=$(date +%s%N)
		ip -n "$ns" link del "x$k"
		e=$(date +%s%N)
		echo $(((e - s) / 1000))
	done | median_ms
}
plain=$(del_ms plain)
{
	echo "table netdev kd {"
	for ((i = 0; i < n; i++)); do
		echo "  chain c$i { type filter hook ingress device v$i priority -500; ip saddr 10.0.0.1 accept; }"
	done
	echo "}"
} >"$tmp/chains.nft"
ip netns exec "$ns" nft -f "$tmp/chains.nft"
chains=$(del_ms chains)
unhooked=$(del_ms unhooked)
kept=$(del_ms kept)
echo "veths=$n: ip link del median ${plain} ms plain, ${chains} ms with their ingress chains, ${unhooked} ms right after the deleted veth's own chain was deleted, ${kept} ms with that chain left in place (median of $reps)"
