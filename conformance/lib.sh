# conformance/lib.sh: topology helpers for netfence's conformance scenarios.
# Source it from a bash script run as root:  . "$(dirname "$0")/lib.sh"
#
# Everything lives in network namespaces this file creates (nfc-<pid>-*) and
# in a temp dir $NFC_DIR; nfc_cleanup (installed as the EXIT trap by
# nfc_setup_node) deletes all of it, also on failure. Only addresses of the
# private topology are used:
#   pods       10.244.0.0/24, fd00:10:244::/64   (bridge nfbr0 in the node, gw .1 / ::1)
#   ClusterIPs 10.96.0.0/16,  fd00:10:96::/112   (nft DNAT in the node, like kube-proxy)
#   external   203.0.113.80,  2001:db8:ee::80    (veth to the node: 203.0.113.1, 2001:db8:ee::1)
#
# Environment read:
#   NFC_PLUGIN_NETFENCE=1   chain netfence after bridge in the conflist (default 1)
#   NFC_NETFENCE_CONF=JSON  the conflist entry for netfence
#                           (default {"type":"netfence","stateFile":"$NFC_DIR/state.json"})
#   NFC_DENY_TIMEOUT=ms     probe timeout of an expected deny (default 1500)
#   NFC_ALLOW_TIMEOUT=ms    probe timeout of one expected-allow try (default 2000)
#   NFC_ALLOW_TRIES=n       tries of an expected allow (default 3)
#   NFC_VERBOSE=1           trace commands of the helpers
#   NFC_POD_ARGS=ARGS       when set (even empty), nfc_pod sends this CNI_ARGS verbatim
#                           instead of the one built from NAME, NS and LABELS
#
# Functions:
#   nfc_setup_node                 node netns, conflist, CNI bin/cache dirs, EXIT trap
#   nfc_pod NAME NS LABELS         pod netns + `cnitool add`; LABELS "k:v,k2:v2" ("k=v" accepted)
#                                  sets $NFC_DIR/pods/NAME.{ip4,ip6,veth,ns,netns,result}
#   nfc_pod_del NAME               `cnitool del`, kill the pod's processes, delete its netns
#   nfc_pod_gone NAME              kill the pod's processes, delete its netns, no DEL
#   nfc_cni add|check|del NAME     raw cnitool call for a pod (returns its status)
#   nfc_ip NAME 4|6                a pod's address
#   nfc_netns NAME                 netns name of a pod, or of "node" / "external"
#   nfc_in NAME CMD...             run CMD in a pod (or node/external); pods see
#                                  $NFC_DIR/resolv.conf (kube-dns ClusterIP) as /etc/resolv.conf
#   nfc_bg NAME LOGNAME CMD...     start CMD in the background in NAME's netns (pid recorded)
#   nfc_serve NAME tcp|udp PORT    `probe serve` in NAME with log $NFC_DIR/log/NAME-PROTO-PORT.log
#   nfc_ctl ARGS...                bin/netfencectl ARGS in the node netns, with NETFENCE_STATE
#   nfc_cluster [POD...]           the NP-14 cluster; pods created in the given order
#                                  (default: kube-dns web foo bar), then external, services
#   nfc_services                   (re)write the ClusterIP DNAT table from the pods present
#   nfc_expect_allow POD PROTO ADDR PORT DESC   probe must connect
#   nfc_expect_deny  POD PROTO ADDR PORT DESC   probe must fail (timeout/unreachable/refused)
#   nfc_expect_http POD URL [DESC [GREP]]       busybox wget must fetch URL
#   nfc_expect_http_deny POD URL [DESC]         busybox wget must fail
#   nfc_expect_resolve POD NAME SERVER [ADDR]   busybox nslookup NAME SERVER must answer (with ADDR)
#   nfc_check DESC CMD...          generic check: CMD must succeed
#   nfc_check_not DESC CMD...      generic check: CMD must fail
#   nfc_server_saw NAME PROTO PORT PEER   did that `probe serve` log a packet from PEER?
#   nfc_kernel_matches_plan        the node's netfence tables list exactly as `netfencectl show`
#                                  loaded with nft into a scratch netns (counters ignored)
#   nfc_summary                    prints "N passed, M failed"; status 1 if M > 0
#   nfc_pod_net DIR NET NAME NS LABELS   nfc_pod on another network: conflist NET in
#                                  NETCONFPATH DIR (recorded; nfc_cni and cleanup use it)
#   nfc_netfence ENV...  <STDIN    bin/netfence run directly in the node netns with ENV
#                                  (CNI_COMMAND=ADD ...); prints its stdout; its status
#   nfc_ruleset                    `nft -a list ruleset` of the node, counters zeroed
#   nfc_kind_chain NAME            the kind_<hash> chain a pod's IPv4 address jumps to
#   nfc_pod_as NAME NS PODNAME LABELS   nfc_pod whose Kubernetes name (K8S_POD_NAME) is PODNAME,
#                                  NAME staying the library's unique key (x-a for pod a of ns x)
#   nfc_cleanup                    the EXIT trap
#   nfc_die MSG                    print MSG, exit 1 (cleanup runs)
#
# Facts that cost time here:
#   - busybox 1.35 (Debian busybox-static) `wget -T N` segfaults: use `timeout N busybox wget`.
#   - `ip netns exec` runs CMD in a fresh mount namespace with / made rslave, so a
#     bind mount over /etc/resolv.conf inside it never reaches the host.
#   - br_netfilter's bridge-nf-call-ip{,6}tables is 1 in every new netns here, which
#     is what lets conntrack un-DNAT the bridged reply web -> foo of a ClusterIP flow.

# Constants and globals are for the scenario scripts; pid lists split on purpose.
# shellcheck disable=SC2034,SC2046

# `cmd | nfc_check ...` must count in this shell, not in a pipeline subshell.
shopt -s lastpipe

NFC_CONF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NFC_ROOT=$(cd "$NFC_CONF_DIR/.." && pwd)
NFC_CNITOOL=$NFC_CONF_DIR/cnitool/cnitool
NFC_PROBE=$NFC_CONF_DIR/probe/probe
NFC_NETFENCECTL=$NFC_ROOT/bin/netfencectl
NFC_ID=$$
NFC_NODE=nfc-$NFC_ID-node
NFC_EXT=nfc-$NFC_ID-ext
NFC_PLUGIN_NETFENCE=${NFC_PLUGIN_NETFENCE:-1}
NFC_DENY_TIMEOUT=${NFC_DENY_TIMEOUT:-1500}
NFC_ALLOW_TIMEOUT=${NFC_ALLOW_TIMEOUT:-2000}
NFC_ALLOW_TRIES=${NFC_ALLOW_TRIES:-3}
NFC_PASS=0
NFC_FAIL=0
NFC_DIR=

# Well-known addresses of the topology.
NFC_NODE4=10.244.0.1
NFC_NODE6=fd00:10:244::1
NFC_EXTGW4=203.0.113.1
NFC_EXTGW6=2001:db8:ee::1
NFC_EXT4=203.0.113.80
NFC_EXT6=2001:db8:ee::80
NFC_WEB_SVC4=10.96.0.80
NFC_WEB_SVC6=fd00:10:96::80
NFC_DNS_SVC4=10.96.0.10
NFC_DNS_SVC6=fd00:10:96::a

nfc_die() {
	echo "nfc: FATAL: $*" >&2
	exit 1
}

nfc_log() {
	[ "${NFC_VERBOSE:-0}" = 1 ] && echo "nfc: $*" >&2
	return 0
}

# Run a command in a netns created by us (never in the caller's netns).
nfc__nsexec() {
	local ns=$1
	shift
	case $ns in
	nfc-$NFC_ID-*) ;;
	*) nfc_die "refusing to run in netns '$ns' (not ours)" ;;
	esac
	ip netns exec "$ns" "$@"
}

nfc__netns_add() {
	ip netns add "$1" || nfc_die "ip netns add $1"
	echo "$1" >>"$NFC_DIR/netns"
}

nfc_netns() {
	case $1 in
	node) echo "$NFC_NODE" ;;
	external) echo "$NFC_EXT" ;;
	*)
		[ -f "$NFC_DIR/pods/$1.netns" ] || nfc_die "no pod '$1'"
		cat "$NFC_DIR/pods/$1.netns"
		;;
	esac
}

nfc_ip() {
	local f=$NFC_DIR/pods/$1.ip$2
	[ -s "$f" ] || nfc_die "pod '$1' has no IPv$2 address"
	cat "$f"
}

nfc_setup_node() {
	[ "$(id -u)" = 0 ] || nfc_die "must run as root"
	[ -x "$NFC_CNITOOL" ] || nfc_die "$NFC_CNITOOL missing: run 'make conformance/cnitool/cnitool'"
	[ -x "$NFC_PROBE" ] || nfc_die "$NFC_PROBE missing: run 'make conformance/probe/probe'"
	NFC_DIR=$(mktemp -d "/tmp/nfc.$NFC_ID.XXXXXX") || nfc_die "mktemp"
	export NFC_DIR
	trap nfc_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$NFC_DIR"/{net.d,bin,cache,ipam,pods,log,run,www}
	: >"$NFC_DIR/netns"
	: >"$NFC_DIR/pids"

	# CNI plugins: the reference ones, plus ours.
	local p
	for p in /usr/lib/cni/*; do
		ln -s "$p" "$NFC_DIR/bin/$(basename "$p")"
	done
	local chain="" nfconf=${NFC_NETFENCE_CONF:-}
	if [ "$NFC_PLUGIN_NETFENCE" = 1 ]; then
		[ -x "$NFC_ROOT/bin/netfence" ] || nfc_die "$NFC_ROOT/bin/netfence missing: run make"
		ln -s "$NFC_ROOT/bin/netfence" "$NFC_DIR/bin/netfence"
		[ -n "$nfconf" ] || nfconf="{\"type\": \"netfence\", \"stateFile\": \"$NFC_DIR/state.json\"}"
		chain=",
    $nfconf"
	fi
	cat >"$NFC_DIR/net.d/nfc.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "nfc",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "nfbr0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.0.0/24"}], [{"subnet": "fd00:10:244::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        "dataDir": "$NFC_DIR/ipam"
      }
    }$chain
  ]
}
EOF
	jq -e . "$NFC_DIR/net.d/nfc.conflist" >/dev/null || nfc_die "generated conflist is not JSON"
	export NETFENCE_STATE=$NFC_DIR/state.json

	# Pods resolve through the kube-dns ClusterIP, as kubelet sets it up.
	cat >"$NFC_DIR/resolv.conf" <<EOF
search default.svc.cluster.local svc.cluster.local cluster.local
nameserver $NFC_DNS_SVC4
options ndots:5 timeout:1 attempts:2
EOF

	nfc__netns_add "$NFC_NODE"
	nfc__nsexec "$NFC_NODE" ip link set lo up
	nfc__nsexec "$NFC_NODE" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 ||
		nfc_die "sysctls in $NFC_NODE"
	local v
	for v in iptables ip6tables; do
		[ "$(nfc__nsexec "$NFC_NODE" cat /proc/sys/net/bridge/bridge-nf-call-$v 2>/dev/null)" = 1 ] ||
			nfc_die "net.bridge.bridge-nf-call-$v is not 1 in $NFC_NODE (br_netfilter missing?)"
	done
	nfc_log "node $NFC_NODE, dir $NFC_DIR"
}

# Start CMD in the background in NAME's netns; stdout+stderr to $NFC_DIR/log/LOGNAME.out.
nfc_bg() {
	local name=$1 logname=$2 ns
	shift 2
	ns=$(nfc_netns "$name")
	case $ns in nfc-$NFC_ID-*) ;; *) nfc_die "refusing to run in netns '$ns'" ;; esac
	# A plain command, not a function: then $! is the process itself (a
	# function would run in a subshell that defers SIGTERM while waiting).
	ip netns exec "$ns" "$@" >"$NFC_DIR/log/$logname.out" 2>&1 &
	local pid=$!
	echo "$pid" >>"$NFC_DIR/pids"
	case $name in node | external) ;; *) echo "$pid" >>"$NFC_DIR/pods/$name.pids" ;; esac
	NFC_LAST_PID=$pid
}

# Wait until the probe client in NAME reaches ADDR PORT (a server is up).
nfc_wait_port() {
	local name=$1 proto=$2 addr=$3 port=$4 i
	for i in $(seq 50); do
		nfc__nsexec "$(nfc_netns "$name")" "$NFC_PROBE" connect "$proto" "$addr" "$port" 300 \
			>/dev/null 2>&1 && return 0
		sleep 0.1
	done
	nfc_die "$name: nothing answers on $addr $port/$proto"
}

nfc_serve() {
	local name=$1 proto=$2 port=$3 ready
	ready=$NFC_DIR/run/$name-$proto-$port.ready
	nfc_bg "$name" "$name-$proto-$port" "$NFC_PROBE" serve --log "$NFC_DIR/log/$name-$proto-$port.log" \
		--ready "$ready" "$proto" "$port"
	local i
	for i in $(seq 50); do
		[ -e "$ready" ] && return 0
		sleep 0.05
	done
	nfc_die "probe serve $proto $port in $name did not start: $(cat "$NFC_DIR/log/$name-$proto-$port.out")"
}

nfc_server_saw() {
	local f=$NFC_DIR/log/$1-$2-$3.log
	[ -f "$f" ] && grep -q "^$2 $4 $3\$" "$f"
}

nfc_cni() {
	local cmd=$1 name=$2
	local d=$NFC_DIR/pods
	local netdir=$NFC_DIR/net.d net=nfc
	[ -f "$d/$name.netns" ] || nfc_die "no pod '$name'"
	# nfc_pod_net records another network for the pod
	[ -f "$d/$name.netdir" ] && netdir=$(cat "$d/$name.netdir") net=$(cat "$d/$name.net")
	nfc__nsexec "$NFC_NODE" env NETCONFPATH="$netdir" CNI_PATH="$NFC_DIR/bin" \
		CNI_CACHE_DIR="$NFC_DIR/cache" CNI_ARGS="$(cat "$d/$name.args")" CNI_IFNAME=eth0 \
		"$NFC_CNITOOL" "$cmd" "$net" "/var/run/netns/$(cat "$d/$name.netns")"
}

nfc_pod() {
	local name=$1 kns=$2 labels=${3:-} d=$NFC_DIR/pods
	local ns=nfc-$NFC_ID-$name
	[ -n "$NFC_DIR" ] || nfc_die "nfc_pod before nfc_setup_node"
	[ ! -e "$d/$name.netns" ] || nfc_die "pod '$name' exists"
	labels=${labels//=/:}
	local args="IgnoreUnknown=1;K8S_POD_NAMESPACE=$kns;K8S_POD_NAME=$name"
	[ -n "$labels" ] && args="$args;K8S_POD_LABELS=$labels"
	[ -n "${NFC_POD_ARGS+set}" ] && args=$NFC_POD_ARGS
	nfc__netns_add "$ns"
	if [ -n "${NFC__POD_NETDIR:-}" ]; then
		echo "$NFC__POD_NETDIR" >"$d/$name.netdir"
		echo "$NFC__POD_NET" >"$d/$name.net"
	fi
	echo "$ns" >"$d/$name.netns"
	echo "$kns" >"$d/$name.ns"
	echo "$labels" >"$d/$name.labels"
	echo "$args" >"$d/$name.args"
	nfc__nsexec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 ||
		nfc_die "sysctls in $ns"
	nfc__nsexec "$ns" ip link set lo up
	# A failed ADD is not rolled back by libcni: DEL it at cleanup either way.
	touch "$d/$name.attached"
	echo "$name" >>"$NFC_DIR/attach_order"
	if ! nfc_cni add "$name" >"$d/$name.result" 2>"$d/$name.err"; then
		echo "nfc: cnitool add $name failed:" >&2
		cat "$d/$name.result" "$d/$name.err" >&2
		return 1
	fi
	jq -r '.ips[].address | select(contains(":") | not) | sub("/.*"; "")' "$d/$name.result" >"$d/$name.ip4"
	jq -r '.ips[].address | select(contains(":")) | sub("/.*"; "")' "$d/$name.result" >"$d/$name.ip6"
	jq -r '.interfaces[] | select(.sandbox == null and .name != "nfbr0") | .name' \
		"$d/$name.result" >"$d/$name.veth"
	nfc_log "pod $name ($kns, $labels): $(cat "$d/$name.ip4") $(cat "$d/$name.ip6") veth $(cat "$d/$name.veth")"
}

nfc__kill() {
	# Only pids we recorded, and only while they still run something of ours.
	local pid i left=""
	for pid in "$@"; do
		[ -r "/proc/$pid/cmdline" ] || continue
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$NFC_DIR" || continue
		kill "$pid" 2>/dev/null && left="$left $pid"
	done
	for i in $(seq 30); do
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

nfc_pod_del() {
	local name=$1 d=$NFC_DIR/pods ns
	ns=$(nfc_netns "$name")
	[ -f "$d/$name.pids" ] && nfc__kill $(cat "$d/$name.pids")
	rm -f "$d/$name.pids"
	if [ -e "$d/$name.attached" ]; then
		nfc_cni del "$name" || echo "nfc: cnitool del $name failed" >&2
		rm -f "$d/$name.attached"
	fi
	ip netns del "$ns" 2>/dev/null
	rm -f "$d/$name".*
}

# The pod's sandbox vanishes without a CNI DEL (as with `ctr run -d` + kill):
# its processes die and its netns is deleted; it stays "attached", so a later
# nfc_cni del NAME (or the cleanup) runs DEL with a netns path that is gone.
nfc_pod_gone() {
	local name=$1 d=$NFC_DIR/pods ns
	ns=$(nfc_netns "$name")
	[ -f "$d/$name.pids" ] && nfc__kill $(cat "$d/$name.pids")
	rm -f "$d/$name.pids"
	ip netns del "$ns"
}

nfc_in() {
	local name=$1 ns
	shift
	ns=$(nfc_netns "$name")
	case $name in
	node | external) nfc__nsexec "$ns" "$@" ;;
	*)
		# shellcheck disable=SC2016
		nfc__nsexec "$ns" sh -c 'mount --bind "$0" /etc/resolv.conf 2>/dev/null; exec "$@"' \
			"$NFC_DIR/resolv.conf" "$@"
		;;
	esac
}

nfc_ctl() {
	[ -x "$NFC_NETFENCECTL" ] || nfc_die "$NFC_NETFENCECTL missing: run make"
	nfc__nsexec "$NFC_NODE" env NETFENCE_STATE="$NFC_DIR/state.json" "$NFC_NETFENCECTL" "$@"
}

nfc__dnsmasq() {
	local name=$1 ip4=$2 ip6=$3
	shift 3
	nfc_bg "$name" "$name-dnsmasq" dnsmasq --keep-in-foreground --conf-file=/dev/null \
		--no-resolv --no-hosts --bind-interfaces --listen-address="$ip4" --listen-address="$ip6" \
		--port=53 --user=root --group=root --pid-file="$NFC_DIR/run/$name-dnsmasq.pid" \
		--log-facility="$NFC_DIR/log/$name-dnsmasq.log" --log-queries "$@"
	nfc_wait_port "$name" udp "$ip4" 53
	nfc_wait_port "$name" udp "$ip6" 53
}

nfc__httpd() {
	local name=$1
	mkdir -p "$NFC_DIR/www/$name"
	echo "hello from $name" >"$NFC_DIR/www/$name/index.html"
	nfc_bg "$name" "$name-httpd" /bin/busybox httpd -f -vv -p 80 -h "$NFC_DIR/www/$name"
}

nfc_external() {
	nfc__netns_add "$NFC_EXT"
	nfc__nsexec "$NFC_EXT" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	nfc__nsexec "$NFC_EXT" ip link set lo up
	nfc__nsexec "$NFC_NODE" ip link add nfc-ext0 type veth peer name eth0 netns "$NFC_EXT" ||
		nfc_die "veth to external"
	nfc__nsexec "$NFC_NODE" ip addr add "$NFC_EXTGW4/24" dev nfc-ext0
	nfc__nsexec "$NFC_NODE" ip addr add "$NFC_EXTGW6/64" dev nfc-ext0 nodad
	nfc__nsexec "$NFC_NODE" ip link set nfc-ext0 up
	nfc__nsexec "$NFC_EXT" ip addr add "$NFC_EXT4/24" dev eth0
	nfc__nsexec "$NFC_EXT" ip addr add "$NFC_EXT6/64" dev eth0 nodad
	nfc__nsexec "$NFC_EXT" ip link set eth0 up
	nfc__nsexec "$NFC_EXT" ip route add default via "$NFC_EXTGW4"
	nfc__nsexec "$NFC_EXT" ip -6 route add default via "$NFC_EXTGW6"
	nfc__httpd external
	nfc__dnsmasq external "$NFC_EXT4" "$NFC_EXT6" \
		--host-record=www.example.com,example.com,"$NFC_EXT4","$NFC_EXT6"
	nfc_wait_port external tcp "$NFC_EXT4" 80
}

# kube-proxy in miniature: DNAT ClusterIP -> pod in prerouting (and output),
# rebuilt atomically from the pods present.
nfc_services() {
	local rules="" web4 web6 dns4 dns6
	if [ -s "$NFC_DIR/pods/web.ip4" ]; then
		web4=$(nfc_ip web 4) web6=$(nfc_ip web 6)
		rules="$rules
    ip daddr $NFC_WEB_SVC4 tcp dport 80 dnat ip to $web4:80
    ip6 daddr $NFC_WEB_SVC6 tcp dport 80 dnat ip6 to [$web6]:80"
	fi
	if [ -s "$NFC_DIR/pods/kube-dns.ip4" ]; then
		dns4=$(nfc_ip kube-dns 4) dns6=$(nfc_ip kube-dns 6)
		rules="$rules
    ip daddr $NFC_DNS_SVC4 meta l4proto { tcp, udp } th dport 53 dnat ip to $dns4:53
    ip6 daddr $NFC_DNS_SVC6 meta l4proto { tcp, udp } th dport 53 dnat ip6 to [$dns6]:53"
	fi
	cat >"$NFC_DIR/services.nft" <<EOF
table inet nfc_svc
delete table inet nfc_svc
table inet nfc_svc {
  chain services {$rules
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }
  chain output {
    type nat hook output priority -100; policy accept;
    jump services
  }
}
EOF
	nfc__nsexec "$NFC_NODE" nft -f "$NFC_DIR/services.nft" || nfc_die "loading services.nft"
}

nfc_pod_kube_dns() {
	nfc_pod kube-dns kube-system k8s-app:kube-dns || nfc_die "pod kube-dns"
	nfc__dnsmasq kube-dns "$(nfc_ip kube-dns 4)" "$(nfc_ip kube-dns 6)" \
		--host-record=web.default.svc.cluster.local,web,"$NFC_WEB_SVC4","$NFC_WEB_SVC6" \
		--host-record=kube-dns.kube-system.svc.cluster.local,"$NFC_DNS_SVC4","$NFC_DNS_SVC6" \
		--host-record=www.example.com,example.com,"$NFC_EXT4","$NFC_EXT6"
	nfc_serve kube-dns tcp 8080
	nfc_serve kube-dns udp 5353
}

nfc_pod_web() {
	nfc_pod web default app:web || nfc_die "pod web"
	nfc__httpd web
	nfc_serve web tcp 8080
	nfc_serve web udp 5353
	nfc_wait_port web tcp "$(nfc_ip web 4)" 80
}

# A plain pod with probe servers on 8080/tcp and 5353/udp (for connections into it).
nfc_pod_plain() {
	nfc_pod "$1" "$2" "$3" || nfc_die "pod $1"
	nfc_serve "$1" tcp 8080
	nfc_serve "$1" udp 5353
}

nfc_cluster() {
	local order=("$@") p
	[ ${#order[@]} -gt 0 ] || order=(kube-dns web foo bar)
	[ -n "$NFC_DIR" ] || nfc_setup_node
	for p in "${order[@]}"; do
		case $p in
		kube-dns) nfc_pod_kube_dns ;;
		web) nfc_pod_web ;;
		foo) nfc_pod_plain foo default app:foo ;;
		bar) nfc_pod_plain bar default app:bar ;;
		*) nfc_die "nfc_cluster: unknown pod '$p'" ;;
		esac
	done
	nfc_external
	nfc_services
	# The node's own address: a server in the node netns (all node addresses).
	nfc_serve node tcp 80
}

# One aligned line per check: "ALLOW ok   foo -> web pod 80/tcp (10.244.0.5)".
nfc__report() {
	local verdict=$1 ok=$2 pod=$3 what=$4 detail=${5:-} status=ok
	if [ "$ok" = 1 ]; then
		NFC_PASS=$((NFC_PASS + 1))
	else
		NFC_FAIL=$((NFC_FAIL + 1))
		status=FAIL
	fi
	[ -n "$pod" ] && what="$pod -> $what"
	printf '%-5s %-4s %s%s\n' "$verdict" "$status" "$what" "${detail% }"
}

nfc_expect_allow() {
	local pod=$1 proto=$2 addr=$3 port=$4 desc=$5 err ok=0 ns
	ns=$(nfc_netns "$pod")
	for _ in $(seq "$NFC_ALLOW_TRIES"); do
		if err=$(nfc__nsexec "$ns" "$NFC_PROBE" connect "$proto" "$addr" "$port" "$NFC_ALLOW_TIMEOUT" 2>&1 >/dev/null); then
			ok=1
			break
		fi
		sleep 0.2
	done
	local extra=""
	[ $ok = 1 ] || extra=" [${err#probe: }]"
	nfc__report ALLOW $ok "$pod" "$desc $port/$proto ($addr)" "$extra"
}

nfc_expect_deny() {
	local pod=$1 proto=$2 addr=$3 port=$4 desc=$5 err ok=0 ns
	ns=$(nfc_netns "$pod")
	if err=$(nfc__nsexec "$ns" "$NFC_PROBE" connect "$proto" "$addr" "$port" "$NFC_DENY_TIMEOUT" 2>&1 >/dev/null); then
		err="connected"
	elif [ $? = 1 ]; then
		ok=1
		err=${err##*: }
	fi
	nfc__report DENY $ok "$pod" "$desc $port/$proto ($addr)" " [$err]"
}

nfc_expect_http() {
	local pod=$1 url=$2 desc=${3:-wget $2} pat=${4:-} out ok=0
	if out=$(nfc_in "$pod" timeout 3 /bin/busybox wget -q -O- "$url" 2>&1); then
		if [ -z "$pat" ] || grep -q -- "$pat" <<<"$out"; then ok=1; fi
	fi
	local extra=""
	[ $ok = 1 ] || extra=" [$(head -c 200 <<<"$out" | tr '\n' ' ')]"
	nfc__report ALLOW $ok "$pod" "$desc" "$extra"
}

nfc_expect_http_deny() {
	local pod=$1 url=$2 desc=${3:-wget $2} out ok=1
	if out=$(nfc_in "$pod" timeout 2 /bin/busybox wget -q -O- "$url" 2>&1); then ok=0; fi
	nfc__report DENY $ok "$pod" "$desc" ""
}

nfc_expect_resolve() {
	local pod=$1 name=$2 server=$3 want=${4:-} out ok=0
	out=$(nfc_in "$pod" timeout 5 /bin/busybox nslookup "$name" "$server" 2>&1)
	# Answers follow the "Name:" line; the server's own Address comes before it.
	local answers
	answers=$(sed -n '/^Name:/,$p' <<<"$out" | sed -n 's/^Address:[[:space:]]*//p')
	if [ -n "$answers" ]; then
		if [ -z "$want" ] || grep -qxF -- "$want" <<<"$answers"; then ok=1; fi
	fi
	local extra
	extra=" = $(tr '\n' ' ' <<<"$answers")"
	[ $ok = 1 ] || extra=" [$(tr '\n' ' ' <<<"$out" | head -c 200)]"
	nfc__report DNS $ok "$pod" "nslookup $name @$server" "$extra"
}

nfc_check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		nfc__report CHECK 1 "" "$desc" ""
	else
		nfc__report CHECK 0 "" "$desc" " [$(tr '\n' ' ' <<<"$out" | head -c 300)]"
	fi
}

nfc_check_not() {
	local desc=$1
	shift
	if "$@" >/dev/null 2>&1; then
		nfc__report CHECK 0 "" "$desc" " [succeeded]"
	else
		nfc__report CHECK 1 "" "$desc" ""
	fi
}

# nfc_netfence_tables CMD...: netfence's tables as `CMD nft` lists them:
# table inet netfence and the netdev tables netfence-NN of the pods'
# anti-spoofing chains (plus an earlier build's table netdev netfence)
nfc_netfence_tables() {
	local _t fam name
	"$@" nft list tables | while read -r _t fam name; do
		case "$fam $name" in
		"inet netfence" | "netdev netfence" | "netdev netfence-"*) "$@" nft list table "$fam" "$name" ;;
		esac
	done
}

# nfc_as_table VETH: the netdev table in the node that holds as_VETH
nfc_as_table() {
	local _t fam name
	nfc_in node nft list tables netdev | while read -r _t fam name; do
		case $name in
		netfence-*) nfc_in node nft list chain netdev "$name" "as_$1" >/dev/null 2>&1 && echo "$name" ;;
		esac
	done
}

# The libnftnl path (the plugin) and the text path (render.c through nft -f)
# must give the same kernel objects.
nfc_kernel_matches_plan() {
	local scratch=nfc-$NFC_ID-scratch t
	# incremental changes create chains in another order than a full
	# load, and hash sets list in kernel order: compare normalized
	local norm="$NFC_CONF_DIR/nft_normalize.py" i
	# the sets rejudge4/rejudge6 hold addresses until the child of a
	# change that restricted running pods is done (enforce/txn.h)
	# (a marker no child holds is a killed change's: nothing to wait for)
	for i in $(seq 50); do
		[ -e "$NFC_DIR/state.json.rejudge" ] && ! flock -n -x "$NFC_DIR/state.json.rejudge" true || break
		sleep 0.1
	done
	nfc_ctl show >"$NFC_DIR/show.nft" || return 1
	nfc__netns_add "$scratch"
	if ! ip netns exec "$scratch" nft -f "$NFC_DIR/show.nft"; then
		ip netns del "$scratch"
		return 1
	fi
	nfc_netfence_tables ip netns exec "$scratch" | python3 "$norm" >"$NFC_DIR/want.nft"
	nfc_netfence_tables nfc_in node | python3 "$norm" >"$NFC_DIR/got.nft"
	ip netns del "$scratch"
	diff -u "$NFC_DIR/want.nft" "$NFC_DIR/got.nft" >&2
}

nfc_summary() {
	echo "$NFC_PASS passed, $NFC_FAIL failed"
	[ "$NFC_FAIL" = 0 ]
}

# A DEL leaves a child behind that cleans conntrack up a second later, and
# so does a policy change that restricts running pods (enforce/txn.h): wait
# for those of this test's plugin runs (their command line names this
# test's dir: its bin/netfence, or a valgrind log in it before the plugin's
# bin/netfence or build/netfence-dynamic) and netfencectl
# runs (their environment names this test's state file) to exit (10 s at
# most, then they are killed: this test started them).
nfc__wait_deferred() {
	local i d c left
	for i in $(seq 100); do
		left=""
		for d in /proc/[0-9]*; do
			[ "${d#/proc/}" = $$ ] && continue
			c=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null)
			case $c in
			*"$NFC_DIR/"*bin/netfence* | *"$NFC_DIR/"*build/netfence-dynamic* | "$NFC_DIR/bin/netfence"*)
				left="$left ${d#/proc/}" ;;
			*bin/netfencectl*)
				tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qxF "NETFENCE_STATE=$NFC_DIR/state.json" &&
					left="$left ${d#/proc/}" ;;
			esac
		done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "nfc: cleanup: netfence children still running after 10 s, killed:$left" >&2
	kill -KILL $left 2>/dev/null
}

nfc_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	if [ -n "$NFC_DIR" ] && [ -d "$NFC_DIR" ]; then
		nfc__kill $(cat "$NFC_DIR/pids" 2>/dev/null)
		local name
		# DEL in reverse order of creation, while the node netns still exists.
		for name in $(tac "$NFC_DIR/attach_order" 2>/dev/null); do
			[ -e "$NFC_DIR/pods/$name.attached" ] || continue
			rm -f "$NFC_DIR/pods/$name.attached"
			nfc_cni del "$name" >/dev/null 2>&1 || echo "nfc: cleanup: cnitool del $name failed" >&2
		done
		nfc__wait_deferred
		local ns
		for ns in $(tac "$NFC_DIR/netns" 2>/dev/null); do
			case $ns in nfc-$NFC_ID-*) ip netns del "$ns" 2>/dev/null ;; esac
		done
		rm -rf "$NFC_DIR"
	fi
	exit $rc
}

nfc_pod_net() {
	local NFC__POD_NETDIR=$1 NFC__POD_NET=$2
	shift 2
	nfc_pod "$@"
}

nfc_netfence() {
	nfc__nsexec "$NFC_NODE" env -i PATH="$PATH" "$@" "$NFC_ROOT/bin/netfence"
}

nfc_kind_chain() { # NAME: the kind's chain a pod's IPv4 address jumps to
	nfc__nsexec "$NFC_NODE" nft list map inet netfence egress4 |
		grep -oE "$(nfc_ip "$1" 4) : jump kind_[0-9a-f]+" | grep -oE 'kind_[0-9a-f]+'
}

nfc_ruleset() {
	nfc__nsexec "$NFC_NODE" nft -a list ruleset | sed 's/counter packets [0-9]* bytes [0-9]*/counter/'
}

nfc_pod_as() {
	local name=$1 kns=$2 pod=$3 labels=${4:-}
	labels=${labels//=/:}
	local args="IgnoreUnknown=1;K8S_POD_NAMESPACE=$kns;K8S_POD_NAME=$pod"
	[ -n "$labels" ] && args="$args;K8S_POD_LABELS=$labels"
	NFC_POD_ARGS=$args nfc_pod "$name" "$kns" "$labels"
}
