#!/bin/bash
# bench/knetdev.sh: what adding one anti-spoofing chain costs the kernel
# next to CHAINS others in one netdev table, against in a table of its own:
# why the pods' chains are spread over 32 netdev tables netfence-NN
# (docs/performance.md, "After bd1a535").
#
#   sudo bench/knetdev.sh [CHAINS [REPS]]     (500 7)
#
# In a scratch network namespace of its own: CHAINS veths, each with an
# ingress chain shaped like netfence's anti-spoofing chain (8 rules) in one
# netdev table; then REPS times, timed around the whole nft command, one
# more such chain (with 2 rules) on a fresh veth, into that table and into
# a table of its own. nf_tables validates the whole table a rule with a
# verdict or a meta match is added to, so the difference is what
# validating the other chains costs. Timed: the transaction's sendmsg
# under strace -T (the whole nft command, ~7 ms with its own listing of
# the ruleset, was too coarse a clock for it). Needs strace. Removes the
# namespace on exit.
set -eu
n=${1:-500} reps=${2:-7}
# shellcheck source=bench/scratch.sh
. "$(dirname "$0")/scratch.sh"
scratch_setup nfkn
for ((i = 0; i < n + 2 * reps; i++)); do echo "link add d$i type veth peer name p$i"; done >"$tmp/links"
ip -n "$ns" -batch "$tmp/links"
{
	echo "table netdev big {"
	for ((i = 0; i < n; i++)); do
		echo "  chain as_d$i {"
		echo "    type filter hook ingress device \"d$i\" priority -500; policy accept;"
		echo "    meta protocol ip ip saddr 10.0.$((i / 250)).$((i % 250 + 1)) accept"
		echo "    meta protocol ip drop"
		echo "    meta protocol ip6 ip6 saddr fd00::$((i + 1)) accept"
		echo "    meta protocol ip6 ip6 saddr fe80::/10 meta l4proto ipv6-icmp icmpv6 type 133-136 accept"
		echo "    meta protocol ip6 ip6 saddr fe80::/10 meta l4proto ipv6-icmp icmpv6 type 143 accept"
		echo "    meta protocol ip6 ip6 saddr :: meta l4proto ipv6-icmp icmpv6 type 135 accept"
		echo "    meta protocol ip6 ip6 saddr :: meta l4proto ipv6-icmp icmpv6 type 143 accept"
		echo "    meta protocol ip6 drop"
		echo "  }"
	done
	echo "}"
} >"$tmp/big.nft"
ip netns exec "$ns" nft -f "$tmp/big.nft"
command -v strace >/dev/null || { echo "knetdev.sh: needs strace" >&2; exit 2; }
ms() { # TABLE-OF-ITS-OWN(0/1) FIRST-DEVICE: median ms of REPS transactions
	local own=$1 first=$2 k d t
	for ((k = 0; k < reps; k++)); do
		d=d$((first + k)) t=big
		[ "$own" = 1 ] && t=own$k
		nft_batch_us "$ns" "add table netdev $t; add chain netdev $t as_$d { type filter hook ingress device \"$d\" priority -500; policy accept; }; add rule netdev $t as_$d meta protocol ip ip saddr 10.9.0.$((k + 1)) accept; add rule netdev $t as_$d meta protocol ip drop" ||
			exit 1
	done | median_ms
}
big=$(ms 0 "$n")
own=$(ms 1 $((n + reps)))
echo "netdev chains=$n: one more anti-spoofing chain ${big} ms into their table, ${own} ms into a table of its own (the transaction's sendmsg, median of $reps)"
