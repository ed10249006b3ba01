# shellcheck shell=bash
# bench/lib.sh: the benchmark's topology, sourced by bench/run.sh (root).
#
# Everything lives in network namespaces named nfb-<pid>-* and in a temp dir
# $NFB_DIR (/tmp/nfb.<pid>.*); nfb_cleanup (the EXIT trap) kills the
# processes it started (recorded pids only) and deletes those namespaces and
# that dir, also on failure. Nothing needs a CNI DEL at cleanup: bridges,
# veths, nftables and iptables rules all live in the node netns, the IPAM,
# CNI cache and netfence state files in $NFB_DIR. Addresses used (the
# private topology of conformance/lib.sh):
#   netfence network  nfb-nf    bridge nfbr0  10.244.0.0/22, .0.2-.3.199 (bridge + host-local + netfence)
#   baseline network  nfb-base  bridge nfbr0  10.244.0.0/22, .3.200-.3.219 (bridge + host-local)
#   firewall network  nfb-fw    bridge nfbr0  10.244.0.0/22, .3.220-.3.239 (bridge + host-local + firewall)
#   tuning network    nfb-tun   bridge nfbr0  10.244.0.0/22, .3.240-.3.250 (bridge + host-local + tuning,
#                                                                           a trivial chained plugin)
#   external host     203.0.113.80 (node side 203.0.113.1)
# No traffic is ever sent anywhere else (the ipBlock peers 10.200.0.0/16,
# 10.1xx.0.0/16 and 172.16.0.0/16 are rule contents only).
#
# Functions:
#   nfb_setup              node netns, networks, CNI dirs, external netns + servers
#   nfb_ns NAME            netns name of node / ext / a pod
#   nfb_in NAME CMD...     run CMD in that netns
#   nfb_bg NAME CMD...     start CMD in the background there (pid recorded)
#   nfb_ctl ARGS...        bin/netfencectl in the node netns (stderr to log/ctl.err)
#   nfb_cni_env [BIN]      the env(1) assignments of a cnitool call (BIN: bin,
#                          bin-mem = netfence under nfb_time, bin-prof = under callgrind,
#                          bin-each = every plugin under nfb_time, log/each.tsv)
#   nfb_pods_grow N        attach pods 0..N-1 to nfb-nf (canary0, canary1, fillers)
#   nfb_variant_node P S   the measured pods of NFB_VARIANTS, P pods and S policies (after nfb_setup)
#   nfb_pod NAME NET ARGS  one pod netns attached with `cnitool add`
#   nfb_die MSG

shopt -s lastpipe
NFB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NFB_CNITOOL=$NFB_ROOT/conformance/cnitool/cnitool
NFB_PROBE=$NFB_ROOT/conformance/probe/probe
NFB_TIME=$NFB_ROOT/bench/nfb_time
NFB_CONNRATE=$NFB_ROOT/bench/connrate
# The binaries measured: bin/ of this tree, or NFB_BIN_DIR (e.g. another
# commit's build). nfb_setup copies them into $NFB_DIR, so a rebuild during
# the run cannot change what is measured.
NFB_BIN_SRC=${NFB_BIN_DIR:-$NFB_ROOT/bin}
NFB_NETFENCECTL=$NFB_BIN_SRC/netfencectl
NFB_PLUGIN=$NFB_BIN_SRC/netfence
NFB_ID=$$
NFB_PFX=nfb-$NFB_ID
NFB_NODE=$NFB_PFX-node
NFB_EXT=$NFB_PFX-ext
NFB_EXT4=203.0.113.80
NFB_DIR=
NFB_NPODS=0

nfb_die() {
	echo "bench: FATAL: $*" >&2
	exit 1
}

nfb_ns() {
	case $1 in
	node) echo "$NFB_NODE" ;;
	ext) echo "$NFB_EXT" ;;
	*) echo "$NFB_PFX-$1" ;;
	esac
}

nfb_in() {
	local ns
	ns=$(nfb_ns "$1")
	shift
	case $ns in "$NFB_PFX"-*) ;; *) nfb_die "refusing netns $ns" ;; esac
	ip netns exec "$ns" "$@"
}

# nfb_netfence_tables [NFT-OPTION...]: netfence's tables in the node netns
# as `nft [-j] list table` prints them: table inet netfence and the netdev
# tables netfence-NN of the pods' anti-spoofing chains
nfb_netfence_tables() {
	local _t fam name
	nfb_in node nft list tables | while read -r _t fam name; do
		case "$fam $name" in
		"inet netfence" | "netdev netfence" | "netdev netfence-"*) nfb_in node nft "$@" list table "$fam" "$name" ;;
		esac
	done
}

# nft commands that delete the netdev tables of netfence's in the node now
# (prefixed to a saved ruleset, so that loading it replaces them)
nfb_netdev_reset() {
	nfb_in node nft list tables netdev |
		awk '$3 == "netfence" || $3 ~ /^netfence-/ { print "table netdev " $3; print "delete table netdev " $3 }'
}

nfb_bg() {
	local ns
	ns=$(nfb_ns "$1")
	shift
	ip netns exec "$ns" "$@" >>"$NFB_DIR/log/bg.out" 2>&1 &
	echo $! >>"$NFB_DIR/pids"
}

nfb__netns_add() {
	ip netns add "$1" || nfb_die "ip netns add $1"
	echo "$1" >>"$NFB_DIR/netns"
}

# nfb_pod_netns NAME [LO]: a pod's netns nfb-<pid>-NAME, its lo up unless LO
# is "down". NFB_NO_IPV6=1: with IPv6 off in it (disable_ipv6), so that
# its interface sends no IPv6 neighbour discovery or MLD when it comes up:
# at 500 pods the bridge floods those to every port, and the kernel's work
# for them (5-6 ms of softirq per ADD+DEL here) lands on whatever runs
# next, such as the next plugin of the chain (docs/performance.md).
nfb_pod_netns() {
	nfb__netns_add "$NFB_PFX-$1"
	[ "${2:-}" = down ] || nfb_in "$1" ip link set lo up
	[ -z "${NFB_NO_IPV6:-}" ] ||
		nfb_in "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 ||
		nfb_die "disabling IPv6 in $1"
}

nfb_ctl() {
	nfb_in node env NETFENCE_STATE="$NFB_DIR/state/state.json" "$NFB_NETFENCECTL" "$@" \
		2>>"$NFB_DIR/log/ctl.err"
}

# nfb_rejudge_wait: until the child of a policy change that restricted
# running pods is done (enforce/txn.h: a second, then the conntrack walk),
# so that the ruleset is the steady one (no re-judging rules or addresses).
nfb_rejudge_wait() {
	local m=$NFB_DIR/state/state.json.rejudge
	for _ in $(seq 100); do
		[ -e "$m" ] && ! flock -n -x "$m" true || return 0
		sleep 0.1
	done
	nfb_die "the re-judging child of a policy change did not finish in 10 s"
}

nfb_cni_env() {
	local bin=${1:-bin}
	echo NETCONFPATH="$NFB_DIR/net.d" CNI_PATH="$NFB_DIR/$bin" CNI_CACHE_DIR="$NFB_DIR/cache" CNI_IFNAME=eth0
}

nfb__conflist() { # NET BRIDGE SUBNET FIRST LAST EXTRA
	local net=$1 br=$2 subnet=$3 first=$4 last=$5 extra=$6
	cat >"$NFB_DIR/net.d/$net.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$net",
  "plugins": [
    {
      "type": "bridge", "bridge": "$br", "isGateway": true, "ipMasq": false,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet", "rangeStart": "$first", "rangeEnd": "$last"}]],
               "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NFB_DIR/ipam"}
    }$extra
  ]
}
EOF
	jq -e . "$NFB_DIR/net.d/$net.conflist" >/dev/null || nfb_die "conflist $net"
}

nfb_setup() {
	[ "$(id -u)" = 0 ] || nfb_die "must run as root"
	local f
	for f in "$NFB_CNITOOL" "$NFB_PROBE" "$NFB_TIME" "$NFB_CONNRATE" "$NFB_NETFENCECTL" "$NFB_PLUGIN"; do
		[ -x "$f" ] || nfb_die "$f missing: run 'make bench-build'"
	done
	for f in iperf3 jq nft python3 shuf iptables; do
		command -v "$f" >/dev/null || nfb_die "$f missing: run scripts/deps.sh"
	done
	NFB_DIR=$(mktemp -d "/tmp/nfb.$NFB_ID.XXXXXX") || nfb_die mktemp
	export NFB_DIR
	trap nfb_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$NFB_DIR"/{net.d,bin,bin-mem,bin-prof,bin-each,cache,ipam,log,gen,dp,nfbin} && mkdir -m 0700 "$NFB_DIR/state"
	cp "$NFB_PLUGIN" "$NFB_NETFENCECTL" "$NFB_DIR/nfbin/" || nfb_die "copying the binaries"
	NFB_PLUGIN=$NFB_DIR/nfbin/netfence NFB_NETFENCECTL=$NFB_DIR/nfbin/netfencectl
	: >"$NFB_DIR/netns"
	: >"$NFB_DIR/pids"
	for f in /usr/lib/cni/*; do
		ln -s "$f" "$NFB_DIR/bin/$(basename "$f")"
		ln -s "$f" "$NFB_DIR/bin-mem/$(basename "$f")"
		ln -s "$f" "$NFB_DIR/bin-prof/$(basename "$f")"
	done
	ln -s "$NFB_PLUGIN" "$NFB_DIR/bin/netfence"
	# the same plugin with its wall time and peak RSS logged (the
	# generated script expands NFB_CELL and CNI_COMMAND, not this one)
	# shellcheck disable=SC2016
	printf '#!/bin/sh\nexec %s -o %s -l "${NFB_CELL:-$CNI_COMMAND}" -- %s\n' "$NFB_TIME" "$NFB_DIR/log/plugin-rusage.tsv" \
		"$NFB_PLUGIN" >"$NFB_DIR/bin-mem/netfence"
	# the same plugin under callgrind (syscall time collected too)
	printf '#!/bin/sh\nexec valgrind -q --tool=callgrind --collect-systime=nsec --callgrind-out-file=%s %s\n' \
		"$NFB_DIR/log/callgrind.out.%p" "$NFB_PLUGIN" >"$NFB_DIR/bin-prof/netfence"
	chmod +x "$NFB_DIR/bin-mem/netfence" "$NFB_DIR/bin-prof/netfence"
	# every plugin with its wall time logged, labelled "<NFB_CELL> <plugin>"
	# (bench/run.sh with NFB_EACH=1: which plugin of the chain takes the time)
	for f in /usr/lib/cni/* "$NFB_PLUGIN"; do
		# shellcheck disable=SC2016
		printf '#!/bin/sh\nexec %s -o %s -l "${NFB_CELL:-$CNI_COMMAND} %s" -- %s\n' "$NFB_TIME" \
			"$NFB_DIR/log/each.tsv" "$(basename "$f")" "$f" >"$NFB_DIR/bin-each/$(basename "$f")"
		chmod +x "$NFB_DIR/bin-each/$(basename "$f")"
	done

	# The three variants share one bridge and subnet (disjoint address
	# ranges: one gateway address, as the bridge plugin requires), so the
	# baseline's pod joins the same populated bridge as netfence's and the
	# difference between them is netfence's alone.
	# NFB_IDLE_KINDS=N: netfence's "idleKindChains" (0: a kind's chain
	# goes with its last pod, so that every measured ADD makes it)
	nfb__conflist nfb-nf nfbr0 10.244.0.0/22 10.244.0.2 10.244.3.199 ",
    {\"type\": \"netfence\", \"stateFile\": \"$NFB_DIR/state/state.json\"${NFB_IDLE_KINDS:+, \"idleKindChains\": $NFB_IDLE_KINDS}}"
	nfb__conflist nfb-base nfbr0 10.244.0.0/22 10.244.3.200 10.244.3.219 ""
	nfb__conflist nfb-tun nfbr0 10.244.0.0/22 10.244.3.240 10.244.3.250 ",
    {\"type\": \"tuning\"}"
	nfb__conflist nfb-fw nfbr0 10.244.0.0/22 10.244.3.220 10.244.3.239 ",
    {\"type\": \"firewall\", \"backend\": \"iptables\"}"

	nfb__netns_add "$NFB_NODE"
	nfb_in node ip link set lo up
	nfb_in node sysctl -qw net.ipv4.ip_forward=1 || nfb_die "sysctl in node"
	for f in iptables ip6tables; do
		[ "$(nfb_in node cat /proc/sys/net/bridge/bridge-nf-call-$f 2>/dev/null)" = 1 ] ||
			nfb_die "bridge-nf-call-$f is not 1 in the node netns (br_netfilter)"
	done

	# the external host, with servers that stop by themselves
	nfb__netns_add "$NFB_EXT"
	nfb_in ext ip link set lo up
	nfb_in node ip link add nfb-ext0 type veth peer name eth0 netns "$NFB_EXT" || nfb_die "veth to ext"
	nfb_in node ip addr add 203.0.113.1/24 dev nfb-ext0
	nfb_in node ip link set nfb-ext0 up
	nfb_in ext ip addr add "$NFB_EXT4/24" dev eth0
	nfb_in ext ip link set eth0 up
	nfb_in ext ip route add default via 203.0.113.1
	nfb_bg ext timeout 3600 "$NFB_PROBE" serve tcp 80
	nfb_bg ext timeout 3600 iperf3 -s -p 5201
	nfb_bg ext "$NFB_CONNRATE" serve 5301 3600
	sleep 0.3
}

nfb_pod_args() {
	echo "IgnoreUnknown=1;K8S_POD_NAMESPACE=$1;K8S_POD_NAME=$2;K8S_POD_LABELS=$3"
}

# nfb_pod NAME NET CNI_ARGS: a pod netns attached to NET with cnitool add.
nfb_pod() {
	local name=$1 net=$2 args=$3 ns
	ns=$(nfb_ns "$name")
	nfb_pod_netns "$name"
	# shellcheck disable=SC2046
	nfb_in node env $(nfb_cni_env bin) CNI_ARGS="$args" "$NFB_CNITOOL" add "$net" "/var/run/netns/$ns" \
		>"$NFB_DIR/log/pod-$name.json" 2>>"$NFB_DIR/log/pod.err" ||
		nfb_die "cnitool add $name ($net): $(tail -3 "$NFB_DIR/log/pod.err")"
}

# Pods 0..N-1 of the netfence network: canary0 (ns0), canary1 (ns1), then
# fillers j in ns(j%5) with app=app-(j%20), tier=t(j%3) (see bench/gen.py).
# The ADDs run in one process in the node netns, each timed into grow.tsv.
nfb_pods_grow() {
	local n=$1 j list=()
	[ "$n" -gt "$NFB_NPODS" ] || return 0
	for ((j = NFB_NPODS; j < n; j++)); do
		nfb_pod_netns "p$j" down
		list+=("$j")
	done
	# shellcheck disable=SC2016
	nfb_in node bash -c '
		set -u
		envs=$1 tool=$2 timer=$3 pfx=$4
		shift 4
		for j in "$@"; do
			case $j in
			0) a="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns0;K8S_POD_NAME=canary0;K8S_POD_LABELS=app:canary0" ;;
			1) a="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=canary1;K8S_POD_LABELS=app:canary1" ;;
			*) a="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns$((j % 5));K8S_POD_NAME=filler$j;K8S_POD_LABELS=app:app-$((j % 20)),tier:t$((j % 3))" ;;
			esac
			env $envs CNI_ARGS="$a" "$timer" -o "$NFB_DIR/log/grow.tsv" -l "grow $j" -- \
				"$tool" add nfb-nf "/var/run/netns/$pfx-p$j" >/dev/null 2>>"$NFB_DIR/log/pod.err" ||
				{ echo "bench: cnitool add pod $j failed: $(tail -3 "$NFB_DIR/log/pod.err")" >&2; exit 1; }
		done' grow "$(nfb_cni_env bin)" "$NFB_CNITOOL" "$NFB_TIME" "$NFB_PFX" "${list[@]}" || nfb_die "attaching pods"
	NFB_NPODS=$n
	nfb__ipam_mirror
}

# host-local's store (one file per allocated address, in a directory per
# network) is read whole on every ADD and DEL (to find the container's
# allocation): with 500 allocations its ADD and DEL take ~2.5 ms longer
# here. The pods attach to the netfence network only, so the other
# networks get the same allocation files (addresses of the netfence range,
# outside theirs: never handed out), as if every pod were in one network,
# as on a node. Without this, host-local's scan was counted as netfence's.
nfb__ipam_mirror() {
	local v f src=$NFB_DIR/ipam/nfb-nf
	for v in base fw tun; do
		mkdir -p "$NFB_DIR/ipam/nfb-$v"
		for f in "$src"/[0-9]*; do
			[ -e "$f" ] || continue
			case ${f##*/} in last_reserved_ip*) continue ;; esac
			[ -e "$NFB_DIR/ipam/nfb-$v/${f##*/}" ] || cp "$f" "$NFB_DIR/ipam/nfb-$v/"
		done
	done
}

nfb__kill() {
	local pid left=""
	for pid in "$@"; do
		[ -r "/proc/$pid/cmdline" ] || continue
		kill "$pid" 2>/dev/null && left="$left $pid"
	done
	for _ in $(seq 30); do
		local still=""
		for pid in $left; do [ -d "/proc/$pid" ] && still="$still $pid"; done
		left=$still
		[ -z "$left" ] && break
		sleep 0.1
	done
	for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
	for pid in "$@"; do wait "$pid" 2>/dev/null; done
	return 0
}

nfb_cleanup() {
	local rc=$? ns
	trap - EXIT INT TERM
	set +e
	if [ -n "$NFB_DIR" ] && [ -d "$NFB_DIR" ]; then
		# shellcheck disable=SC2046
		nfb__kill $(cat "$NFB_DIR/pids" 2>/dev/null)
		for ns in $(tac "$NFB_DIR/netns" 2>/dev/null); do
			case $ns in "$NFB_PFX"-*) ip netns del "$ns" 2>/dev/null ;; esac
		done
		rm -rf "$NFB_DIR"
	fi
	exit $rc
}

# For bench/plugin_alone.sh and pc_alone.sh. nfb_base_bin NAME: with
# NFB_BASE_BIN_DIR set, copies its NAME (the baseline build) next to the
# measured binaries and sets NFB_BASE to the copy; else NFB_BASE is empty.
# shellcheck disable=SC2034 # NFB_BASE: read by the scripts that source this file
nfb_base_bin() {
	NFB_BASE=
	[ -n "${NFB_BASE_BIN_DIR:-}" ] || return 0
	[ -x "$NFB_BASE_BIN_DIR/$1" ] || nfb_die "$NFB_BASE_BIN_DIR/$1 missing"
	cp "$NFB_BASE_BIN_DIR/$1" "$NFB_DIR/nfbin/$1.base" || nfb_die "copying the baseline"
	NFB_BASE=$NFB_DIR/nfbin/$1.base
}

# nfb_variant_node PODS POLICIES (after nfb_setup): the measured pod netns
# of each variant of NFB_VARIANTS (exported; default "base nf tun") and the
# node filled with PODS pods and POLICIES policies, its rejudge done: what
# bench/lat_loop.sh rounds run on (growth_node.sh, delwait.sh).
nfb_variant_node() {
	local v
	export NFB_TIME NFB_CNITOOL NFB_PFX
	export NFB_VARIANTS=${NFB_VARIANTS:-base nf tun}
	for v in $NFB_VARIANTS; do
		nfb_pod_netns "m-$v"
	done
	nfb_fill "$1" "$2"
	nfb_rejudge_wait
}

# nfb_fill PODS POLICIES: the namespaces, PODS pods, then POLICIES policies
# (bench/gen.py's sets, into $NFB_DIR/gen).
nfb_fill() {
	python3 bench/gen.py "$NFB_DIR/gen" --sizes "$2" --peers 10 >/dev/null || nfb_die "gen.py"
	nfb_ctl apply -f "$NFB_DIR/gen/namespaces.json" >/dev/null || nfb_die "apply namespaces"
	nfb_pods_grow "$1"
	nfb_ctl apply -f "$NFB_DIR/gen/policies-$2.json" >/dev/null || nfb_die "apply policies"
}

# nfb_ab_summary TSV LABEL...: median and p90 of each LABEL's timings (and
# of "base LABEL", if any), and the ratio of the two medians.
nfb_ab_summary() {
	python3 - "$@" <<'PY2'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    d[f[0]].append(float(f[1]))
for k in sys.argv[2:]:
    for label in (k, "base " + k):
        if label not in d:
            continue
        v = sorted(d[label])
        print("  %-19s median %.2f p90 %.2f" % (label, statistics.median(v), v[min(len(v) - 1, int(len(v) * 0.9))]))
    if "base " + k in d:
        print("  %s ratio (median / baseline median) %.3f" % (k, statistics.median(d[k]) / statistics.median(d["base " + k])))
PY2
}
