# shellcheck shell=bash
# bench/scratch.sh: sourced by kvalidate.sh and kvethdel.sh, the kernel
# measurements that need no netfence: a private network namespace and a
# temp dir, both removed on exit; and the median of timings.
#
#   scratch_setup NAME    root check; $ns (netns NAME-<pid>, created) and $tmp
#   median_ms             reads microseconds, one per line; prints their median in ms

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
