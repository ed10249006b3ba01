# shellcheck shell=bash
# bench/scratch.sh: sourced by the kernel measurements (kvalidate.sh,
# knetdev.sh, kvethdel.sh, kasshard.sh, krules.sh; ktxn.sh for its timer):
# a private network namespace and a temp dir, both removed on exit; the
# kernel time of one nft transaction; and the median of timings.
#
#   scratch_setup NAME       root check; $ns (netns NAME-<pid>, created) and $tmp
#   nft_batch_us NETNS ARG.. runs nft ARG.. in NETNS; prints the kernel time of
#                            its batch in microseconds: nft's last sendmsg under
#                            strace -T (the commit runs inside it; the listings
#                            nft makes first are sendmsgs before it). Fails as nft does.
#   median_ms                reads microseconds, one per line; prints their median in ms

scratch_setup() {
	[ "$(id -u)" = 0 ] || { echo "$1: must run as root" >&2; exit 2; }
	ns=$1-$$
	tmp=$(mktemp -d)
	trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"' EXIT
	ip netns add "$ns"
}

median_ms() {
	sort -n | awk '{v[NR] = $1} END {printf "%.2f", v[int((NR + 1) / 2)] / 1000}'
}

nft_batch_us() {
	local netns=$1 st r=0
	shift
	st=$(mktemp) || return 1
	strace -qq -f -T -e trace=sendmsg -o "$st" ip netns exec "$netns" nft "$@" || r=1
	[ "$r" = 0 ] && sed -n 's/.*<\([0-9.]*\)>$/\1/p' "$st" | tail -1 | awk '{printf "%d\n", $1 * 1000000}'
	rm -f "$st"
	return "$r"
}
