# shellcheck shell=bash
# conformance/containerd/ctd.sh: a private containerd 1.6 for the conformance
# scripts, driven with `ctr run --cni`. Source it after lib.sh, then call
# nfc_setup_node (the node netns, $NFC_DIR with the conflist, the CNI bin dir
# and cache dir) and ctd_start.
#
# Isolation (nothing of the host's containerd or CNI setup is read or written):
#   - containerd runs with root, state, socket and the opt plugin's dir under
#     $NFC_DIR/ctd, its CRI plugin disabled (ctr, not containerd, runs CNI).
#   - It runs in the node netns (nsenter --net, which keeps the host's /sys and
#     so its cgroup mounts, unlike `ip netns exec`) and in a private mount
#     namespace (unshare -m --propagation private) where:
#       /run       is a tmpfs: the shims' sockets (/run/containerd/s, fixed in
#                  1.6), runc's root (/run/containerd/runc) and ctr's IO fifos
#                  (/run/containerd/fifo) never reach the host;
#       /opt, /var/lib are tmpfs, /etc an overlay (upper dir in $NFC_DIR), so
#                  that the fixed paths ctr insists on can be created there:
#       /etc/cni/net.d  <- bind $NFC_DIR/net.d   (ctr takes the first file)
#       /opt/cni/bin    <- bind $NFC_DIR/bin     (bridge, host-local, netfence)
#       /var/lib/cni    <- bind $NFC_DIR/cache   (libcni's result cache)
#   - ctr runs in containerd's own mount and network namespaces (nsenter -t),
#     so the CNI plugins it runs put the bridge and the host-side veths in the
#     node netns, and the fifos it creates are the ones the shim opens.
#   - Containers get the cgroup /nfc-<pid>/<id> (ctd_run), removed at cleanup.
#
# Functions:
#   ctd_start                 start containerd, import the test image ($CTD_IMAGE)
#   ctd_ctr ARGS...           ctr --address <ours> --namespace default ARGS
#   ctd_run ID ARGS... -- CMD...   `ctr run --cni --cgroup ... ARGS $CTD_IMAGE ID CMD...`
#                             with $NFC_DIR/share bind-mounted at /share
#   ctd_task_gone ID          `ctr task kill -s KILL`, wait, `task rm`, `container rm`
#                             (no CNI DEL: what happens to a detached container)
#   ctd_tasks_running         container IDs (ctr's) of the running tasks
#   ctd_stop                  kill every task and containerd, remove cgroups
#                             (run it before nfc_cleanup: ctd_exit_trap does)
#   ctd_exit_trap             the EXIT trap: ctd_stop, then nfc_cleanup
#
# Facts (containerd 1.6.20, runc 1.1.5, Debian 12):
#   - The runc v2 shim outlives containerd (it daemonizes): kill tasks first,
#     then containerd, then any shim left (found by its -address in $NFC_DIR).
#   - A container's pid 1 ignores SIGTERM unless it handles it: use SIGKILL.

# shellcheck disable=SC2034
CTD_IMAGE=docker.io/library/nfc-busybox:latest
CTD_PID=
CTD_DIR=
CTD_SOCK=

ctd__config() {
	cat <<EOF
version = 2
root = "$CTD_DIR/root"
state = "$CTD_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CTD_SOCK"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CTD_DIR/opt"
EOF
}

ctd_start() {
	[ -n "$NFC_DIR" ] || nfc_die "ctd_start before nfc_setup_node"
	local b
	for b in containerd ctr runc containerd-shim-runc-v2; do
		command -v "$b" >/dev/null || nfc_die "$b missing: apt-get install containerd runc"
	done
	CTD_DIR=$NFC_DIR/ctd
	CTD_SOCK=$CTD_DIR/containerd.sock
	mkdir -p "$CTD_DIR"/{root,state,opt,etc.up,etc.work} "$NFC_DIR/share"
	chmod 0777 "$NFC_DIR/share"
	ctd__config >"$CTD_DIR/config.toml"
	# The mounts are made in the new namespace, before exec: every process
	# that containerd starts (shims, runc) inherits them.
	# shellcheck disable=SC2016 # expanded by that sh
	local setup='set -e
d=$0
mount -t tmpfs -o mode=0755 nfc-run /run
mount -t tmpfs -o mode=0755 nfc-opt /opt
mount -t tmpfs -o mode=0755 nfc-varlib /var/lib
mount -t overlay -o lowerdir=/etc,upperdir=$d/ctd/etc.up,workdir=$d/ctd/etc.work nfc-etc /etc
mkdir -p /etc/cni/net.d /opt/cni/bin /var/lib/cni
mount --bind $d/net.d /etc/cni/net.d
mount --bind $d/bin /opt/cni/bin
mount --bind $d/cache /var/lib/cni
exec containerd --config $d/ctd/config.toml'
	# nsenter and unshare exec (no fork): $! is containerd itself.
	nsenter --net="/run/netns/$NFC_NODE" unshare -m --propagation private \
		sh -c "$setup" "$NFC_DIR" >"$NFC_DIR/log/containerd.log" 2>&1 &
	CTD_PID=$!
	echo "$CTD_PID" >"$CTD_DIR/pid"
	local i
	for i in $(seq 100); do
		[ -S "$CTD_SOCK" ] && ctd_ctr version >/dev/null 2>&1 && break
		kill -0 "$CTD_PID" 2>/dev/null ||
			nfc_die "containerd exited: $(tail -5 "$NFC_DIR/log/containerd.log")"
		sleep 0.1
	done
	ctd_ctr version >/dev/null 2>&1 || nfc_die "containerd does not answer on $CTD_SOCK"
	"$NFC_CONF_DIR/containerd/mkimage.sh" "$CTD_DIR/image.tar" "$CTD_IMAGE" "$NFC_PROBE" ||
		nfc_die "building the test image"
	ctd_ctr image import "$CTD_DIR/image.tar" >"$NFC_DIR/log/import.out" 2>&1 ||
		nfc_die "ctr image import: $(cat "$NFC_DIR/log/import.out")"
	nfc_log "containerd pid $CTD_PID, socket $CTD_SOCK"
}

ctd_ctr() {
	[ -n "$CTD_PID" ] || nfc_die "ctd_ctr before ctd_start"
	nsenter -t "$CTD_PID" -m -n ctr --address "$CTD_SOCK" --namespace default "$@"
}

ctd_run() {
	local id=$1 opts=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	echo "$id" >>"$CTD_DIR/ids"
	ctd_ctr run --cni --cgroup "/nfc-$NFC_ID/$id" \
		--mount "type=bind,src=$NFC_DIR/share,dst=/share,options=rbind:rw" \
		"${opts[@]}" "$CTD_IMAGE" "$id" "$@"
}

ctd_task_gone() {
	local id=$1 i
	ctd_ctr task kill -a -s KILL "$id" >/dev/null 2>&1
	for i in $(seq 50); do
		ctd_ctr task ls 2>/dev/null | awk -v id="$id" '$1 == id && $3 == "RUNNING" {f=1} END {exit !f}' ||
			break
		sleep 0.1
	done
	ctd_ctr task rm "$id" >/dev/null 2>&1
	ctd_ctr container rm "$id" >/dev/null 2>&1
}

ctd_tasks_running() {
	ctd_ctr task ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" {print $1}'
}

ctd__cgroup_dirs() {
	local d
	for d in /sys/fs/cgroup/*/nfc-"$NFC_ID" /sys/fs/cgroup/nfc-"$NFC_ID"; do
		[ -d "$d" ] && echo "$d"
	done
}

ctd_stop() {
	[ -n "$CTD_PID" ] || return 0
	local id pid d i
	if kill -0 "$CTD_PID" 2>/dev/null; then
		for id in $(ctd_ctr task ls -q 2>/dev/null); do
			ctd_ctr task kill -a -s KILL "$id" >/dev/null 2>&1
		done
		for id in $(ctd_ctr container ls -q 2>/dev/null); do
			for i in $(seq 20); do
				ctd_ctr task rm -f "$id" >/dev/null 2>&1 && break
				ctd_ctr task ls -q 2>/dev/null | grep -qx "$id" || break
				sleep 0.1
			done
			ctd_ctr container rm "$id" >/dev/null 2>&1
		done
		kill "$CTD_PID" 2>/dev/null
		for i in $(seq 50); do
			kill -0 "$CTD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$CTD_PID" 2>/dev/null
	fi
	wait "$CTD_PID" 2>/dev/null
	# Whatever is still in our cgroups (a container whose shim died), then
	# shims left over (their -address names our socket): by pid, ours only.
	for d in $(ctd__cgroup_dirs); do
		find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
			kill -KILL "$pid" 2>/dev/null
		done
	done
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		case $(cat "$d/comm" 2>/dev/null) in containerd-shim*) ;; *) continue ;; esac
		tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -- "$CTD_SOCK" && kill -KILL "$pid" 2>/dev/null
	done
	for i in $(seq 20); do
		local busy=0
		for d in $(ctd__cgroup_dirs); do
			find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
			[ -d "$d" ] && busy=1
		done
		[ $busy = 0 ] && break
		sleep 0.1
	done
	CTD_PID=
}

ctd_exit_trap() {
	local rc=$?
	trap - EXIT
	ctd_stop
	(exit $rc)
	nfc_cleanup
}
