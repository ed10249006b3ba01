#!/bin/bash
# bench/kvalidate.sh: what one verdict-map element costs the kernel as the
# table grows (docs/performance.md, "What is left").
#
#   sudo bench/kvalidate.sh [CHAINS [RULES [REPS [ELEMS]]]]     (500 150 10 CHAINS)
#
# In a scratch network namespace of its own: a table like netfence's (a
# base chain dispatching through a verdict map of ELEMS entries to CHAINS
# chains of RULES rules each, every rule a set lookup and a port; entry i
# jumps to chain i % CHAINS: ELEMS pods of CHAINS kinds), then REPS times
# `nft add element` of one `jump` entry into the map, and REPS times of one
# element into a plain set, each timed by its transaction (nft's last
# sendmsg, its batch, under strace -T: scratch.sh nft_batch_us). The difference is what nf_tables' validation
# of the table costs: inserting a jump verdict makes the kernel walk every
# chain reachable from the base chains (each once per hook, however many
# entries jump to it) before it commits. Then the same with the dispatch
# in two base chains, at forward and input (netfence's layout before it
# had one, at prerouting): the kernel walks every chain once per hook.
# Removes the namespace on exit. Needs strace.
set -eu
chains=${1:-500} rules=${2:-150} reps=${3:-10}
elems=${4:-$chains}
# shellcheck source=bench/scratch.sh
. "$(dirname "$0")/scratch.sh"
command -v strace >/dev/null || { echo "kvalidate.sh: needs strace" >&2; exit 2; }
scratch_setup nfkv
{
	echo "table inet kv {"
	echo "  set peers { type ipv4_addr; }"
	echo "  map dispatch { type ipv4_addr : verdict; }"
	echo "  chain base { type filter hook prerouting priority filter; policy accept; ip saddr vmap @dispatch; }"
	for ((i = 0; i < chains; i++)); do
		echo "  chain c$i {"
		for ((j = 0; j < rules; j++)); do
			echo "    ip daddr @peers tcp dport $((j + 1)) accept"
		done
		echo "    counter drop"
		echo "  }"
	done
	echo "  chain spare { counter drop; }"
	echo "}"
	printf "add element inet kv dispatch { "
	for ((i = 0; i < elems; i++)); do
		printf "10.%d.%d.1 : jump c%d, " $((i / 250)) $((i % 250)) $((i % chains))
	done
	echo "}"
} >"$tmp/ruleset.nft"
ip netns exec "$ns" nft -f "$tmp/ruleset.nft"
ms() { # median ms of REPS transactions of: nft add element inet kv SET "{ ELEM }"
	local set=$1 fmt=$2 k
	for ((k = 1; k <= reps; k++)); do
		# shellcheck disable=SC2059
		nft_batch_us "$ns" add element inet kv "$set" "{ $(printf "$fmt" "$k") }" || exit 1
	done | median_ms
}
jump=$(ms dispatch "10.250.0.%d : jump spare")
plain=$(ms peers "10.251.0.%d")
ip netns exec "$ns" nft "delete chain inet kv base; \
	add chain inet kv basefwd { type filter hook forward priority filter; policy accept; }; add rule inet kv basefwd ip saddr vmap @dispatch; \
	add chain inet kv basein { type filter hook input priority filter; policy accept; }; add rule inet kv basein ip saddr vmap @dispatch"
jump2=$(ms dispatch "10.252.0.%d : jump spare")
echo "chains=$chains rules=$rules entries=$elems: add one jump element ${jump} ms (one base chain, prerouting), ${jump2} ms (two, forward and input); one plain set element ${plain} ms (the transaction's sendmsg, median of $reps)"
