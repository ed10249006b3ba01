#!/bin/bash
# bench/growth.sh: how much netfence's added ADD/DEL time grows from one
# cell to another (1 -> 500 pods, 10 -> 1,000 policies), with the two
# cells' rounds interleaved.
#
#   sudo bench/growth.sh [--out DIR] LO_PODS LO_POLICIES HI_PODS HI_POLICIES [ROUNDS]
#   e.g. bench/growth.sh 1 100 500 100 400      (the pods target)
#        bench/growth.sh 100 10 100 1000 400    (the policies target)
#
# bench/run.sh measures its cells one after the other on one node, so a
# growth there is the difference of two cells measured minutes apart, and
# this machine drifts by as much as the target between them (tuning, which
# does the same work in every cell, "grew" by +0.06 to +1.62 ms). Here two
# nodes are built side by side (bench/growth_node.sh, each its own node
# netns, state file, bridge and IPAM), one per cell, and filled once; then
# every round runs one round on each node, in a random order: the ADD and
# DEL of the measured pod of each variant (bridge + host-local = base,
# + netfence = nf, + tuning = tun; NFB_VARIANTS to change), as bench/run.sh
# does. So both cells see the same drift, and the growth is taken from
# rounds that ran seconds apart.
#
# Prints (and writes to DIR/growth.md) per command and variant the added
# time (variant - base, same round, same node) at each cell, and its growth
# hi - lo: the difference of the two medians, with a 90 % bootstrap
# interval that resamples rounds (both cells of a round together). The
# target (< 1 ms) is "met" when the interval's top is below 1, "missed"
# when its bottom is above 1, else "not resolved". DIR/latency.tsv has the
# raw times in bench/run.sh's format. NFB_BIN_DIR, NFB_IDLE_KINDS: as for
# bench/run.sh.
set -u
out=""
[ "${1:-}" = --out ] && { out=$2; shift 2; }
[ $# -ge 4 ] || { echo "usage: bench/growth.sh [--out DIR] LO_PODS LO_POLICIES HI_PODS HI_POLICIES [ROUNDS]" >&2; exit 2; }
lp=$1 ls=$2 hp=$3 hs=$4 rounds=${5:-400}
for n in "$lp" "$ls" "$hp" "$hs" "$rounds"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "growth.sh: not a positive number: $n" >&2; exit 2; }
done
cd "$(dirname "$0")/.." || exit 2
[ "$(id -u)" = 0 ] || { echo "growth.sh: must run as root" >&2; exit 1; }
[ -n "$out" ] || out=bench/results/$(date +%Y%m%d-%H%M%S)-growth-p$lp-s$ls-p$hp-s$hs
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
ctl=$(mktemp -d /tmp/nfb-growth.XXXXXX) || exit 2
pids=()
cleanup() {
	local rc=$? p i
	trap - EXIT INT TERM
	trap '' PIPE # a node gone: the quit goes nowhere
	for p in a b; do [ -n "${fd[$p]:-}" ] && { echo quit >&"${fd[$p]}"; } 2>/dev/null; done
	for i in $(seq 600); do # a node's cleanup deletes its pods' netns
		local alive=0
		for p in "${pids[@]}"; do [ -d "/proc/$p" ] && alive=1; done
		[ $alive = 0 ] && break
		[ "$i" = 300 ] && kill "${pids[@]}" 2>/dev/null
		sleep 0.1
	done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$ctl"
	exit $rc
}
declare -A fd rd
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
t0=$(date +%s)
say() { printf '[%4ds] %s\n' $(($(date +%s) - t0)) "$*"; }

say "two nodes: $lp pods x $ls policies (lo), $hp pods x $hs policies (hi)"
for p in a b; do
	mkfifo "$ctl/$p.in" "$ctl/$p.out" || exit 1
	if [ $p = a ]; then c="$lp $ls"; else c="$hp $hs"; fi
	# shellcheck disable=SC2086
	bash bench/growth_node.sh $p $c "$ctl" "$out/latency-$p.tsv" 2>"$out/node-$p.err" &
	pids+=($!)
	exec {w}>"$ctl/$p.in" {r}<"$ctl/$p.out"
	fd[$p]=$w rd[$p]=$r
done
for p in a b; do
	read -r -t 1800 reply <&"${rd[$p]}"
	[ "${reply:-}" = ready ] || { echo "growth.sh: node $p did not come up: $(tail -3 "$out/node-$p.err")" >&2; exit 1; }
done
say "both nodes ready; $rounds rounds, each one round per node in a random order"
for ((r = 1; r <= rounds; r++)); do
	for p in $(shuf -e a b); do
		echo "round $r" >&"${fd[$p]}"
		read -r -t 600 reply <&"${rd[$p]}"
		[ "${reply:-}" = ok ] || { echo "growth.sh: node $p, round $r: ${reply:-no reply}" >&2; exit 1; }
	done
	[ $((r % 50)) = 0 ] && say "  round $r/$rounds"
done
cat "$out/latency-a.tsv" "$out/latency-b.tsv" >"$out/latency.tsv"
{
	echo "lo=p$lp s$ls"
	echo "hi=p$hp s$hs"
	echo "rounds=$rounds"
	echo "variants=${NFB_VARIANTS:-base nf tun}"
	echo "binaries=${NFB_BIN_DIR:-bin} (netfence md5 $(md5sum <"${NFB_BIN_DIR:-bin}/netfence" | cut -c1-12))"
	echo "idleKindChains=${NFB_IDLE_KINDS:-default}"
	echo "pods_ipv6=$([ -n "${NFB_NO_IPV6:-}" ] && echo off || echo on)"
	echo "kernel=$(uname -r) nproc=$(nproc)"
} >"$out/config.txt"
python3 bench/growth.py "$out" "p$lp s$ls" "p$hp s$hs" | tee "$out/growth.md"
say "done: $out/growth.md"
