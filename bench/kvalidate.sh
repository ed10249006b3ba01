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
# element into a plain set, each timed around the whole nft command. The
# difference is what nf_tables' validation of the table costs: inserting a
# jump verdict makes the kernel walk every chain reachable from the base
# chains (each once, however many entries jump to it) before it commits.
# Removes the namespace on exit.
set -eu
chains=${1:-500} rules=${2:-150} reps=${3:-10}
elems=${4:-$chains}
# shellcheck source=bench/scratch.sh
. "$(dirname "$0")/scratch.sh"
scratch_setup nfkv
{
	echo "table inet kv {"
	echo "  set peers { type ipv4_addr; }"
	echo "  map dispatch { type ipv4_addr : verdict; }"
	echo "  chain basefwd { type filter hook forward priority filter; policy accept; ip saddr vmap @dispatch; }"
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
ms() { # median ms of REPS runs of: nft add element inet kv SET "{ ELEM }"
	local set=$1 fmt=$2 k s e
	for ((k = 1; k <= reps; k++)); do
		s=$(date +%s%N)
		# shellcheck disable=SC2059
		ip netns exec "$ns" nft add element inet kv "$set" "{ $(printf "$fmt" "$k") }"
		e=$(date +%s%N)
		echo $(((e - s) / 1000))
	done | median_ms
}
jump=$(ms dispatch "10.250.0.%d : jump spare")
plain=$(ms peers "10.251.0.%d")
echo "chains=$chains rules=$rules entries=$elems: add one jump element ${jump} ms, one plain set element ${plain} ms (median of $reps nft commands)"
