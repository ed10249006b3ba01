#!/bin/bash
# bench/krules.sh: what the kernel takes to make a chain of rules, as the
# first pod of a kind's ADD does (its kind's chain, one rule per allowed
# peer and port), and how that depends on the number of named sets in
# the table: nf_tables finds the set a rule's lookup names by walking the
# table's list of sets, comparing names (nft_set_lookup).
#
#   sudo bench/krules.sh [RULES [SETS [REPS]]]     (44 227 15)
#
# In a private network namespace: an inet table with SETS named address
# sets, then REPS transactions per row, each making one chain of RULES
# rules, timed by the batch's sendmsg (nft_batch_us: strace -T; the
# kernel's commit included), and the chain deleted again:
#   no set      ip daddr 10.0.0.1 tcp dport N accept (no lookup)
#   first set   ip daddr @s0 tcp dport N accept (the set made first)
#   last set    ip daddr @s<SETS-1> tcp dport N accept (made last)
#   rules x 2   the "first set" chain with 2 x RULES rules
# Prints the median of each, in ms, and what a rule and a set before the
# named one cost. 227 named sets and ~44 rules are the bench's 100 pods x
# 1,000 policies (bench/gen.py): the tables of docs/performance.md.
set -u
cd "$(dirname "$0")/.." || exit 2
# shellcheck source=bench/scratch.sh
. bench/scratch.sh
rules=${1:-44} sets=${2:-227} reps=${3:-15}
for n in "$rules" "$sets" "$reps"; do
	case $n in '' | *[!0-9]*) echo "usage: bench/krules.sh [RULES [SETS [REPS]]]" >&2; exit 2 ;; esac
done
if [ "$rules" -lt 1 ] || [ "$sets" -lt 1 ] || [ "$reps" -lt 1 ]; then
	echo "krules.sh: RULES, SETS and REPS must be >= 1" >&2
	exit 2
fi
command -v strace >/dev/null || { echo "krules.sh: needs strace" >&2; exit 2; }
scratch_setup nfb-krules

{
	echo "table inet t {"
	for ((i = 0; i < sets; i++)); do echo "set s$i { type ipv4_addr; }"; done
	echo "}"
} >"$tmp/base.nft"
ip netns exec "$ns" nft -f "$tmp/base.nft" || { echo "krules.sh: cannot make the table" >&2; exit 1; }

# one chain of n rules matching with $2 ("" = no set), REPS times: the
# batch's sendmsg of each run (nft_batch_us), in microseconds, one per line
time_chain() {
	local n=$1 set=$2 r j match
	for ((r = 0; r < reps; r++)); do
		{
			echo "add chain inet t k"
			for ((j = 0; j < n; j++)); do
				if [ -n "$set" ]; then match="ip daddr @$set"; else match="ip daddr 10.0.0.1"; fi
				echo "add rule inet t k $match tcp dport $((1000 + j)) accept"
			done
		} >"$tmp/batch.nft"
		nft_batch_us "$ns" -f "$tmp/batch.nft" || exit 1
		ip netns exec "$ns" nft delete chain inet t k || exit 1
	done
}

none=$(time_chain "$rules" "" | median_ms)
first=$(time_chain "$rules" s0 | median_ms)
last=$(time_chain "$rules" "s$((sets - 1))" | median_ms)
double=$(time_chain "$((rules * 2))" s0 | median_ms)
echo "kernel time of one chain of $rules rules, $sets named sets in the table, $reps runs (median ms):"
printf '  %-34s %s\n' "no set (ip daddr 10.0.0.1)" "$none" "first set made (@s0)" "$first" \
	"last set made (@s$((sets - 1)))" "$last" "$((rules * 2)) rules, first set" "$double"
awk -v r="$rules" -v s="$sets" -v f="$first" -v l="$last" -v d="$double" 'BEGIN {
	printf "  a rule: %.1f us; a set before the one a rule names: %.1f ns\n",
		(d - f) * 1000 / r, (s > 1 ? (l - f) * 1e6 / r / (s - 1) : 0) }'
