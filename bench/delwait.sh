#!/bin/bash
# bench/delwait.sh: where the bridge plugin's DEL waits in the kernel, after
# netfence's DEL, after tuning's, and first in the chain (the baseline).
#
#   sudo bench/delwait.sh [--out DIR] [PODS [ROUNDS [POLICIES]]]     (500 300 100)
#
# On the bench topology (bench/lib.sh) with PODS pods and POLICIES
# policies, ROUNDS rounds of bench/lat_loop.sh (the measured pods of
# NFB_VARIANTS, default "base nf tun", ADD then DEL in a random order),
# with the scheduler traced: every time a thread of the bridge plugin
# blocks (state D) during a DEL, the kernel stack where it blocked, and
# when it runs again. bench/delwait.py then prints, per variant, the time
# per DEL the bridge plugin spent blocked in rcu_barrier (the veth's
# deletion waits there for every RCU callback queued on the node),
# synchronize_rcu[_expedited] and elsewhere, the DEL's whole time, and
# the per-round difference of each to the baseline's.
#
# A DEL in the chain takes steps of ~4 ms (a jiffy here): this says which
# wait they are, and whether a chained plugin before bridge (libcni DELs
# in reverse order) makes it longer (docs/performance.md, "The growth with
# pods inside the chain"). The tracing is a tracefs instance of its own
# (its own buffer, events and triggers), mounted in a private mount
# namespace, removed on exit; the kernel must have the sched events and
# the stacktrace trigger. It adds some time to every context switch of
# the bridge plugin, so the DEL times here are not bench/run.sh's.
# Results: DIR (default bench/results/<date>-delwait-pPODS): trace.txt,
# latency.tsv, delwait.md. NFB_BIN_DIR, NFB_NO_IPV6: as for bench/run.sh.
set -u
out=""
[ "${1:-}" = --out ] && { out=$2; shift 2; }
pods=${1:-500} rounds=${2:-300} policies=${3:-100}
for n in "$pods" "$rounds" "$policies"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "delwait.sh: not a positive number: $n" >&2; exit 2; }
done
cd "$(dirname "$0")/.." || exit 2
[ "$(id -u)" = 0 ] || { echo "delwait.sh: must run as root" >&2; exit 1; }
[ -n "$out" ] || out=bench/results/$(date +%Y%m%d-%H%M%S)-delwait-p$pods
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
# tracefs in a mount namespace of this script's own: the host's mounts
# stay as they are
if [ -z "${NFB_DELWAIT_NS:-}" ]; then
	NFB_DELWAIT_NS=1 exec unshare -m --propagation private bash "$0" --out "$out" "$pods" "$rounds" "$policies"
fi
T=/sys/kernel/tracing
mountpoint -q "$T" || mount -t tracefs nodev "$T" || { echo "delwait.sh: cannot mount tracefs" >&2; exit 1; }
I=$T/instances/nfb-delwait-$$
ev=$I/events/sched/sched_switch
catpid=""
trace_down() { # keeps $?: the EXIT trap's nfb_cleanup exits with it
	local rc=$?
	[ -d "$I" ] || return $rc
	echo 0 >"$I/tracing_on"
	echo 0 >"$ev/enable"
	echo '!stacktrace' >"$ev/trigger" 2>/dev/null
	[ -n "$catpid" ] && kill "$catpid" 2>/dev/null && wait "$catpid" 2>/dev/null
	rmdir "$I"
	return $rc
}
. bench/lib.sh
nfb_setup
trap 'trace_down; nfb_cleanup' EXIT
nfb_variant_node "$pods" "$policies"

mkdir "$I" || nfb_die "cannot make a tracefs instance (tracefs: $T)"
[ -f "$ev/trigger" ] || nfb_die "no sched_switch event or triggers in this kernel's tracefs"
echo 16384 >"$I/buffer_size_kb"
# a thread of bridge going to sleep uninterruptibly, with its stack, and
# any thread of bridge getting the CPU back
echo '(prev_comm == "bridge" && prev_state & 2) || next_comm == "bridge"' >"$ev/filter" ||
	nfb_die "sched_switch filter refused"
echo 'stacktrace if prev_comm == "bridge" && prev_state & 2' >"$ev/trigger" || nfb_die "stacktrace trigger refused"
cat "$I/trace_pipe" >"$out/trace.txt" &
catpid=$!
echo 1 >"$ev/enable"
echo 1 >"$I/tracing_on"
exec {mark}>"$I/trace_marker"
echo "delwait: $pods pods x $policies policies, $rounds rounds of $NFB_VARIANTS" >&2
NFB_MARK_FD=$mark nfb_in node bash bench/lat_loop.sh "$out/latency.tsv" "p$pods" "$rounds" 0 "$NFB_PFX" ||
	nfb_die "rounds failed: $(tail -3 "$NFB_DIR/log/lat.err")"
exec {mark}>&-
sleep 0.5 # trace_pipe drains
trace_down
{
	echo "pods=$pods policies=$policies rounds=$rounds variants=$NFB_VARIANTS"
	echo "pods_ipv6=$([ -n "${NFB_NO_IPV6:-}" ] && echo off || echo on)"
	echo "binaries=${NFB_BIN_DIR:-bin}"
	echo "kernel=$(uname -r) nproc=$(nproc)"
} >"$out/config.txt"
python3 bench/delwait.py "$out/trace.txt" "$out/latency.tsv" | tee "$out/delwait.md"
exit "${PIPESTATUS[0]}" # the parser's failure is the run's
