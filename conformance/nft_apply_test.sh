#!/bin/bash
# enforce/nft.c against the real kernel: build/nft_plan_driver applies
# hand-built plans (tests/tools/nft_plan_driver.c) inside throwaway network
# namespaces (nftdev-<pid>-*), never in the caller's. Checks the ruleset
# nft lists, replacement, failure atomicity, deletion, large sets, packets
# (allow, deny, spoofing), nft_check_pod against a ruleset altered with the
# nft CLI, nft_remove_pod and, with valgrind installed, leaks.
#
#   make build/nft_plan_driver conformance/probe/probe && conformance/nft_apply_test.sh
#   NFT_TEST_BIG=50000   size of the large-plan test (default 20000)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DRIVER=$ROOT/build/nft_plan_driver
PROBE=$ROOT/conformance/probe/probe
ID=nftdev-$$
NODE=$ID-node
PASS=0
FAIL=0
NETNS=()
PIDS=()

die() {
	echo "FATAL: $*" >&2
	exit 1
}

cleanup() {
	local rc=$? p ns
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	[ -n "${TMP:-}" ] && rm -rf "$TMP"
	exit $rc
}

[ "$(id -u)" = 0 ] || die "must run as root"
[ -x "$DRIVER" ] || die "$DRIVER missing: make build/nft_plan_driver"
[ -x "$PROBE" ] || die "$PROBE missing: make conformance/probe/probe"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TMP=$(mktemp -d "/tmp/$ID.XXXXXX") || die mktemp

netns_add() {
	ip netns add "$1" || die "ip netns add $1"
	NETNS+=("$1")
	in_ns "$1" ip link set lo up
	in_ns "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# only in namespaces of this run
in_ns() {
	local ns=$1
	shift
	case $ns in $ID-*) ;; *) die "refusing to run in netns '$ns'" ;; esac
	ip netns exec "$ns" "$@"
}
node() { in_ns "$NODE" "$@"; }
driver() { node "$DRIVER" "$@"; }
ruleset() { node nft list ruleset | sed 's/^[[:space:]]*//'; }

ok() {
	PASS=$((PASS + 1))
	echo "ok   $*"
}
fail() {
	FAIL=$((FAIL + 1))
	echo "FAIL $*"
}
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$desc"; else fail "$desc [$(echo "$out" | tr '\n' ' ' | head -c 400)]"; fi
}
check_not() {
	local desc=$1
	shift
	if "$@" >/dev/null 2>&1; then fail "$desc [succeeded]"; else ok "$desc"; fi
}
# every line given must be a line of `nft list ruleset` (leading blanks stripped)
expect_lines() {
	local desc=$1 l missing="" rs
	shift
	rs=$(ruleset)
	for l in "$@"; do
		grep -qxF -- "$l" <<<"$rs" || missing="$missing | $l"
	done
	if [ -z "$missing" ]; then ok "$desc"; else fail "$desc: missing$missing"; fi
}
expect_no_line() {
	local desc=$1 pat=$2
	if ruleset | grep -qE -- "$pat"; then fail "$desc: /$pat/ listed"; else ok "$desc"; fi
}

# ---- topology: node with pods p1 (nfv1), p2 (nfv2) and a server (nfvs),
# routed point-to-point, like the ptp plugin ----
netns_add "$NODE"
node sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
node ip addr add 10.1.0.1/32 dev lo
# name addr4 addr6 node-side-veth [extra addresses...]
endpoint() {
	local a4=$2 a6=$3 veth=$4 ns=$ID-$1 a
	shift 4
	netns_add "$ns"
	node ip link add "$veth" type veth peer name eth0 netns "$ns" || die "veth $veth"
	node ip addr add fe80::1/64 dev "$veth"
	node ip link set "$veth" up
	in_ns "$ns" ip link set eth0 up
	for a in "$a4" "$@"; do
		case $a in
		*:*) in_ns "$ns" ip addr add "$a/128" dev eth0 nodad
			node ip -6 route add "$a/128" dev "$veth" ;;
		*) in_ns "$ns" ip addr add "$a/32" dev eth0
			node ip route add "$a/32" dev "$veth" ;;
		esac
	done
	in_ns "$ns" ip addr add "$a6/128" dev eth0 nodad
	node ip -6 route add "$a6/128" dev "$veth"
	in_ns "$ns" ip route add 10.1.0.1/32 dev eth0
	in_ns "$ns" ip route add default via 10.1.0.1 dev eth0
	in_ns "$ns" ip -6 route add default via fe80::1 dev eth0
}
endpoint p1 10.1.0.5 fd00::5 nfv1
endpoint p2 10.1.0.6 fd00::6 nfv2
endpoint srv 10.1.0.10 fd00::10 nfvs 10.1.0.11 10.1.0.20 172.16.0.1
# plan 2 guards it: its chain shares the netdev table of nfv1's (netfence-24)
node ip link add nfv29 type veth peer name nfp29 || die "veth nfv29"

serve() {
	local who=$1 proto=$2 port=$3 _try
	# not through in_ns: a function sent to the background is a subshell,
	# and killing its PID would leave the server running
	ip netns exec "$ID-$who" "$PROBE" serve --ready "$TMP/$who-$proto-$port" "$proto" "$port" \
		>/dev/null 2>&1 &
	PIDS+=($!)
	for _try in $(seq 50); do
		[ -e "$TMP/$who-$proto-$port" ] && return 0
		sleep 0.05
	done
	die "probe serve $proto $port in $who did not start"
}
for port in 80 1500 5432 5433; do serve srv tcp "$port"; done
serve srv udp 53
serve p1 tcp 8080

# connect FROM PROTO ADDR PORT [--src ADDR]
conn() {
	local from=$1 proto=$2 addr=$3 port=$4 src=()
	[ $# -ge 6 ] && src=(--src "$6")
	in_ns "$ID-$from" "$PROBE" connect "${src[@]}" "$proto" "$addr" "$port" 1000
}
allow() {
	local desc=$1 _try
	shift
	for _try in 1 2 3; do
		conn "$@" >/dev/null 2>&1 && { ok "ALLOW $desc"; return; }
		sleep 0.2
	done
	fail "ALLOW $desc [$(conn "$@" 2>&1)]"
}
deny() {
	local desc=$1 out
	shift
	if out=$(conn "$@" 2>&1); then fail "DENY $desc [connected]"; else ok "DENY $desc [${out##*: }]"; fi
}

echo "== before any plan: the topology works"
allow "p1 -> srv 172.16.0.1:80/tcp" p1 tcp 172.16.0.1 80
allow "p2 -> srv [fd00::10]:53/udp" p2 udp fd00::10 53
check_not "no netfence chain yet (nft_chain_exists)" driver exists pod_aaaa

echo "== apply plan 1"
check "apply1" driver apply1
expect_lines "inet table: maps, sets, elements" \
	"table inet netfence {" \
	"map egress4 {" "type ipv4_addr : verdict" \
	"elements = { 10.1.0.5 : jump pod_aaaa, 10.1.0.6 : jump pod_bbbb }" \
	"map egress6 {" "type ipv6_addr : verdict" "elements = { fd00::5 : jump pod_aaaa }" \
	"set peers_web {" "comment \"ns(default) pods(app=web)\"" "elements = { 10.1.0.10, 10.1.0.11 }" \
	"set peers_web6 {" "elements = { fd00::10 }" \
	"set pod_aaaa_any_4 {" "flags interval" "elements = { 10.0.0.0/8, 192.168.0.0/16," \
	"255.255.255.0/24 }" \
	"set blk_1 {" "elements = { fd00:1::/64," "fd00:2::/63," "ffff::/16 }" \
	"set blk_empty {"
expect_lines "inet table: base chains" \
	"chain prerouting {" "type filter hook prerouting priority filter; policy accept;" \
	"ct state established,related accept" "icmpv6 type 133-136 accept" \
	"ip saddr vmap @egress4" "ip6 saddr vmap @egress6"
expect_no_line "inet table: no base chain at forward or input (one at prerouting sees both)" \
	'hook (forward|input)'
expect_lines "inet table: pod chains, rules of every shape" \
	"chain pod_aaaa {" "comment \"default/a\"" \
	"ip daddr @peers_web tcp dport 80 accept comment \"default/allow-web egress[0]\"" \
	"ip6 daddr @peers_web6 udp dport 53 accept comment \"default/allow-web egress[0]\"" \
	"ip daddr @pod_aaaa_any_4 accept comment \"default/allow-blocks egress[0]\"" \
	"tcp dport 1000-2000 accept comment \"default/allow-range egress[0]\"" \
	"ip6 daddr @blk_1 sctp dport 5000 accept comment \"default/allow-sctp egress[1]\"" \
	"meta l4proto udp accept comment \"default/allow-udp egress[0]\"" \
	"meta nfproto ipv6 accept" \
	"counter packets 0 bytes 0 drop" \
	"chain pod_bbbb {"
expect_lines "netdev tables: one per pod, each with its antispoof chain" \
	"table netdev netfence-24 {" "table netdev netfence-17 {" \
	"chain as_nfv1 {" "type filter hook ingress device \"nfv1\" priority -500; policy accept;" \
	"ip saddr 10.1.0.5 accept" "meta protocol ip drop" "ip6 saddr fd00::5 accept" \
	"ip6 saddr fe80::/10 icmpv6 type nd-router-solicit accept" \
	"ip6 saddr fe80::/10 icmpv6 type 135-136 accept" \
	"ip6 saddr fe80::/10 icmpv6 type mld2-listener-report accept" \
	"ip6 saddr :: icmpv6 type nd-neighbor-solicit accept" \
	"ip6 saddr :: icmpv6 type mld2-listener-report accept" \
	"meta protocol ip6 drop" \
	"chain as_nfv2 {" "ip saddr 10.1.0.6 accept"
expect_no_line "antispoof chain of a missing device skipped" 'as_nfvgone|nfvgone'
expect_no_line "as_nfv2 has no v6 address rule" 'ip6 saddr fd00::6'
check "as_nfv2 (no v6 address) lets no neighbour discovery or MLD through: it drops all IPv6" \
	bash -c "[ \"\$(ip netns exec $NODE nft list chain netdev netfence-17 as_nfv2 | grep -c -e icmpv6 -e 'ip6 saddr')\" = 0 ] &&
		ip netns exec $NODE nft list chain netdev netfence-17 as_nfv2 | grep -q 'meta protocol ip6 drop'"
check "pod_bbbb has exactly the final drop" \
	bash -c "[ \"\$(ip netns exec $NODE nft list chain inet netfence pod_bbbb | grep -c -e accept -e drop)\" = 1 ]"
check "nft_chain_exists pod_aaaa = yes" driver exists pod_aaaa
check_not "nft_chain_exists pod_zzzz = no" driver exists pod_zzzz
check "nft re-reads what nft_apply wrote (list | nft -c -f -)" \
	bash -c "ip netns exec $NODE nft list ruleset > $TMP/rs1 && ip netns exec $NODE nft -c -f $TMP/rs1"

echo "== packets under plan 1"
allow "p1 -> 10.1.0.10:80/tcp (peers_web + 80)" p1 tcp 10.1.0.10 80
allow "p1 -> 172.16.0.1:1500/tcp (any dst, tcp 1000-2000)" p1 tcp 172.16.0.1 1500
deny "p1 -> 172.16.0.1:80/tcp (no rule)" p1 tcp 172.16.0.1 80
allow "p1 -> [fd00::10]:53/udp" p1 udp fd00::10 53
deny "p2 -> 10.1.0.10:80/tcp (pod_bbbb denies all)" p2 tcp 10.1.0.10 80
deny "p2 spoofing p1's 10.1.0.5 -> 10.1.0.10:80/tcp (antispoof)" p2 tcp 10.1.0.10 80 --src 10.1.0.5
deny "p2 spoofing unlisted 10.1.0.77 -> 10.1.0.10:80/tcp (antispoof)" p2 tcp 10.1.0.10 80 --src 10.1.0.77
deny "p2 over IPv6 (no v6 address in its plan) -> [fd00::10]:53/udp" p2 udp fd00::10 53
# A pod's neighbour solicitation for the node's fe80::1 makes the node learn
# the pod's link-local address (RFC 4861 7.2.3); p1 (with an IPv6 address)
# gets through, p2 (IPv4 only) must not: on a bridge its ND and MLD would
# be flooded to every port.
# nd_learnt POD VETH: the node has a neighbour entry for POD's link-local
nd_learnt() {
	local ll
	ll=$(in_ns "$ID-$1" ip -6 -o addr show dev eth0 scope link | awk '{print $4}' | cut -d/ -f1)
	[ -n "$ll" ] || { echo "$1 has no link-local address"; return 2; }
	node ip -6 neigh flush dev "$2"
	in_ns "$ID-$1" ip -6 neigh flush dev eth0 # else the ping may need no solicitation
	in_ns "$ID-$1" busybox ping -6 -c 1 -W 1 -I eth0 fe80::1 >/dev/null 2>&1
	node ip -6 neigh show dev "$2" | grep -q "^$ll "
}
nd_not_learnt() {
	nd_learnt "$@"
	[ $? = 1 ]
}
check "p1 (IPv6 address): its neighbour discovery reaches the node" nd_learnt p1 nfv1
check "p2 (IPv4 only): its neighbour discovery is dropped at its veth" nd_not_learnt p2 nfv2
# A pod is a host: a router advertisement or a redirect from it would make
# it the IPv6 router of its neighbours (CVE-2020-10749). Each pod sends one
# ICMPv6 message of each type to ff02::1 from its link-local address; a
# chain behind the antispoof chain (priority 0) counts what got through.
# icmp6_sent POD VETH: how many of RS, RA, redirect got past POD's chain
icmp6_sent() {
	local t out
	node nft -f - <<EOF || return 2
table netdev nfprobe {
	chain c {
		type filter hook ingress device "$2" priority 0; policy accept;
		icmpv6 type nd-router-solicit counter
		icmpv6 type nd-router-advert counter
		icmpv6 type nd-redirect counter
	}
}
EOF
	for t in 133 134 137; do
		in_ns "$ID-$1" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.sendto(bytes([int(sys.argv[1])]) + bytes(39), ("ff02::1", 0, 0, socket.if_nametoindex("eth0")))
' "$t" || { node nft delete table netdev nfprobe; return 2; }
	done
	out=$(node nft list table netdev nfprobe | grep -o 'packets [0-9]*' | cut -d' ' -f2 | paste -sd' ')
	node nft delete table netdev nfprobe
	echo "$out"
}
check "p1 (IPv6 address): its router solicitation passes, its router advertisement and redirect do not" \
	bash -c "[ \"\$1\" = '1 0 0' ] || { echo \"RS RA redirect passed: \$1\"; exit 1; }" _ "$(icmp6_sent p1 nfv1)"
check "p2 (IPv4 only): none of the three passes" \
	bash -c "[ \"\$1\" = '0 0 0' ] || { echo \"RS RA redirect passed: \$1\"; exit 1; }" _ "$(icmp6_sent p2 nfv2)"
allow "srv -> p1:8080/tcp (into a selected pod, reply passes)" srv tcp 10.1.0.5 8080
check "pod_aaaa's drop counted packets" \
	bash -c "ip netns exec $NODE nft list chain inet netfence pod_aaaa | grep -q 'counter packets [1-9]'"

echo "== nft_check_pod: the kernel against the plan, pod by pod"
check "check pod_aaaa (plan 1 applied)" driver check apply1 pod_aaaa
check "check pod_bbbb (plan 1 applied)" driver check apply1 pod_bbbb
# check_fails DESC CHAIN REGEX: nft_check_pod of plan 1 fails, its message matches
check_fails() {
	local desc=$1 chain=$2 re=$3 out rc
	out=$(driver check apply1 "$chain" 2>&1)
	rc=$?
	if [ $rc = 1 ] && grep -qE -- "code 102\): $re" <<<"$out"; then
		ok "$desc [${out#*: }]"
	else
		fail "$desc: rc=$rc, want /$re/: $(head -c 600 <<<"$out")"
	fi
}
# tamper DESC CHAIN REGEX NFT-ARGS...: from plan 1, alter the ruleset with
# the nft CLI, expect the check to fail naming the difference, restore
tamper() {
	local desc=$1 chain=$2 re=$3
	shift 3
	driver apply1 >/dev/null 2>&1 || fail "tamper $desc: apply1"
	if ! node nft "$@"; then
		fail "tamper $desc: nft $* failed"
		return
	fi
	check_fails "tampered: $desc" "$chain" "$re"
}
# handle_of FAMILY TABLE CHAIN RULE-TEXT
handle_of() { node nft -a list chain "$1" "$2" "$3" | grep -F -- "$4" | sed 's/.*# handle //'; }
check_fails "a chain not in the plan" pod_zzzz 'chain "pod_zzzz" is not in the plan'
out=$(driver check apply2 pod_cccc 2>&1)
if grep -q 'chain "pod_cccc" is missing from table inet netfence' <<<"$out"; then ok "plan 2's chain missing [$out]"; else fail "plan 2's chain missing: $out"; fi
tamper "accept rule inserted into pod_aaaa" pod_aaaa \
	'chain "pod_aaaa": rule 0 is not in the plan \(kernel: \[ immediate reg 0 accept \]\)' \
	insert rule inet netfence pod_aaaa accept
check "  ... pod_bbbb still matches" driver check apply1 pod_bbbb
tamper "rule appended to pod_aaaa" pod_aaaa 'chain "pod_aaaa": rule 8 is not in the plan' \
	add rule inet netfence pod_aaaa ip daddr 1.2.3.4 accept
driver apply1
tamper "rule deleted from pod_aaaa" pod_aaaa \
	'chain "pod_aaaa": rule 3 of the plan is missing \(plan: .*comment "default/allow-range egress\[0\]"\)' \
	delete rule inet netfence pod_aaaa handle "$(handle_of inet netfence pod_aaaa 'tcp dport 1000-2000')"
driver apply1
tamper "port range of a rule changed" pod_aaaa \
	'chain "pod_aaaa": rule 3 differs from the plan \(kernel: .*0x0000d107.*, plan: .*0x0000d007' \
	replace rule inet netfence pod_aaaa handle "$(handle_of inet netfence pod_aaaa 'tcp dport 1000-2000')" \
	tcp dport 1000-2001 accept comment '"default/allow-range egress[0]"'
driver apply1
tamper "comment of a rule changed" pod_aaaa 'chain "pod_aaaa": rule 3 differs from the plan .*comment "x"' \
	replace rule inet netfence pod_aaaa handle "$(handle_of inet netfence pod_aaaa 'tcp dport 1000-2000')" \
	tcp dport 1000-2000 accept comment '"x"'
tamper "element added to a host set" pod_aaaa 'set "peers_web": element 10.9.9.9 is not in the plan' \
	add element inet netfence peers_web '{ 10.9.9.9 }'
check "  ... pod_bbbb (does not use peers_web) still matches" driver check apply1 pod_bbbb
tamper "element deleted from a host set" pod_aaaa 'set "peers_web": element 10.1.0.11 missing' \
	delete element inet netfence peers_web '{ 10.1.0.11 }'
tamper "prefix deleted from an interval set" pod_aaaa 'set "pod_aaaa_any_4": element 192.168.0.0/16 missing' \
	delete element inet netfence pod_aaaa_any_4 '{ 192.168.0.0/16 }'
tamper "open-ended prefix deleted from an interval set" pod_aaaa 'set "pod_aaaa_any_4": element 255.255.255.0/24 missing' \
	delete element inet netfence pod_aaaa_any_4 '{ 255.255.255.0/24 }'
tamper "address added to an interval set" pod_aaaa 'set "pod_aaaa_any_4": element 1.2.3.4/32 is not in the plan' \
	add element inet netfence pod_aaaa_any_4 '{ 1.2.3.4 }'
tamper "prefix and range added to an IPv6 interval set" pod_aaaa \
	'set "blk_1": element 2001::/32 is not in the plan \(2 differences in all\)' \
	add element inet netfence blk_1 '{ 2001::/32, 3000::-3000::7 }'
tamper "dispatch element deleted (egress4)" pod_aaaa \
	'map "egress4": 10.1.0.5 does not jump to "pod_aaaa" \(no element for 10.1.0.5\)' \
	delete element inet netfence egress4 '{ 10.1.0.5 }'
tamper "dispatch element deleted (egress6)" pod_aaaa 'map "egress6": fd00::5 does not jump to "pod_aaaa"' \
	delete element inet netfence egress6 '{ fd00::5 }'
tamper "another address jumps to the pod chain" pod_aaaa \
	'map "egress6": fd00::7 jumps to "pod_aaaa", the plan does not say so' \
	add element inet netfence egress6 '{ fd00::7 : jump pod_aaaa }'
tamper "a pod's address jumps to another chain" pod_bbbb \
	'map "egress4": 10.1.0.6 does not jump to "pod_bbbb" \(it jumps to "pod_aaaa"\)' \
	delete element inet netfence egress4 '{ 10.1.0.6 }' \; add element inet netfence egress4 '{ 10.1.0.6 : jump pod_aaaa }'
tamper "rule added to base chain prerouting" pod_bbbb 'chain "prerouting": rule 4 is not in the plan' \
	add rule inet netfence prerouting accept
tamper "base chain prerouting flushed" pod_bbbb 'chain "prerouting": 0 rules, the plan has 4; rule 0 of the plan is missing' \
	flush chain inet netfence prerouting
tamper "policy of base chain prerouting changed" pod_bbbb 'chain "prerouting": its hook differs from the plan' \
	chain inet netfence prerouting '{ policy drop ; }'
tamper "accept rule inserted into the antispoof chain" pod_aaaa 'chain "as_nfv1": rule 0 is not in the plan' \
	insert rule netdev netfence-24 as_nfv1 accept
tamper "antispoof rule of the v6 address deleted" pod_aaaa 'chain "as_nfv1": rule 2 of the plan is missing' \
	delete rule netdev netfence-24 as_nfv1 handle "$(handle_of netdev netfence-24 as_nfv1 'ip6 saddr fd00::5 accept')"
tamper "antispoof chain bound to another device too" pod_aaaa \
	'chain "as_nfv1" is bound to "nfv2", "nfv1", the plan says device "nfv1"' \
	add chain netdev netfence-24 as_nfv1 '{ type filter hook ingress devices = { nfv1, nfv2 } priority -500 ; }'
tamper "antispoof chain re-created on another device" pod_aaaa \
	'chain "as_nfv1" is bound to "nfv2", the plan says device "nfv1"' \
	delete chain netdev netfence-24 as_nfv1 \; add chain netdev netfence-24 as_nfv1 \
	'{ type filter hook ingress device nfv2 priority -500 ; }'
tamper "antispoof chain deleted" pod_bbbb 'chain "as_nfv2" is missing from table netdev netfence-17' \
	delete chain netdev netfence-17 as_nfv2
tamper "the pod's netdev table deleted" pod_aaaa 'table netdev netfence-24 is missing' \
	delete table netdev netfence-24
tamper "table inet deleted" pod_bbbb 'table inet netfence is missing' delete table inet netfence
tamper "pod chain deleted" pod_bbbb 'chain "pod_bbbb" is missing from table inet netfence' \
	delete element inet netfence egress4 '{ 10.1.0.6 }' \; delete chain inet netfence pod_bbbb

echo "== nft_remove_pod: best-effort removal of one pod"
check "apply1" driver apply1
node nft add element inet netfence egress4 '{ 10.1.0.77 : jump pod_aaaa }'
check "remove pod_aaaa" driver remove pod_aaaa as_nfv1 10.1.0.5 fd00::5
expect_no_line "nothing of pod_aaaa left (chain, its set pod_aaaa_any_4, map elements, antispoof)" \
	'pod_aaaa|as_nfv1|10\.1\.0\.(5|77)[^0-9]|fd00::5[^0-9a-f]'
check "pod_bbbb untouched: nft_check_pod passes" driver check apply1 pod_bbbb
expect_lines "the rest untouched: sets, pod_bbbb, as_nfv2" \
	"set peers_web {" "elements = { 10.1.0.10, 10.1.0.11 }" "set blk_1 {" \
	"elements = { 10.1.0.6 : jump pod_bbbb }" "chain pod_bbbb {" "chain as_nfv2 {" \
	"ip saddr 10.1.0.6 accept" "chain prerouting {"
allow "p1 (its rules removed) -> 172.16.0.1:80/tcp" p1 tcp 172.16.0.1 80
deny "p2 -> 10.1.0.10:80/tcp (pod_bbbb still denies)" p2 tcp 10.1.0.10 80
check "remove pod_aaaa again (idempotent)" driver remove pod_aaaa as_nfv1 10.1.0.5 fd00::5
node nft add element inet netfence egress4 '{ 10.1.0.78 : jump pod_bbbb }'
check "remove by addresses only (no chain name), another address still jumps to the chain" \
	driver remove - - 10.1.0.6
check_fails "  ... then pod_bbbb lost its dispatch entry" pod_bbbb 'map "egress4": 10.1.0.6 does not jump to "pod_bbbb"'
expect_lines "  ... its chain stays (10.1.0.78 still jumps to it)" "chain pod_bbbb {" \
	"elements = { 10.1.0.78 : jump pod_bbbb }"
check "remove the last address that jumps to it" driver remove - - 10.1.0.78
expect_no_line "  ... the chain went with it (the last pod of its kind)" 'pod_bbbb|10\.1\.0\.78'
check "apply1" driver apply1
node nft add rule inet netfence pod_bbbb jump pod_aaaa
out=$(driver remove pod_aaaa as_nfv1 10.1.0.5 fd00::5 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q 'deleting chain "pod_aaaa": Device or resource busy' <<<"$out"; then
	ok "remove of a chain still jumped to fails, names it [${out#*: }]"
else
	fail "remove of a busy chain: rc=$rc: $out"
fi
check "  ... and the failed transaction changed nothing (pod_aaaa's map entry kept)" \
	bash -c "ip netns exec $NODE nft list map inet netfence egress4 | grep -q '10.1.0.5 : jump pod_aaaa'"
check "delete" driver delete
check "remove without tables" driver remove pod_aaaa as_nfv1 10.1.0.5 fd00::5
check "apply1" driver apply1
node nft delete table netdev netfence-24
check "remove without its table netdev" driver remove pod_aaaa as_nfv1 10.1.0.5 fd00::5
expect_no_line "pod_aaaa gone" 'pod_aaaa'
check "apply1 (restore)" driver apply1

echo "== a rejected plan leaves the kernel as it was"
node nft list ruleset >"$TMP/before"
out=$(driver bad 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q 'error -34 (code 102): nftables rejected chain "pod_xxx' <<<"$out" &&
	grep -q 'map "egress4" (dispatch entries .*10.1.0.8 : jump pod_nochain): No such file or directory' <<<"$out"; then
	ok "bad plan: error names the chain, the code is NF_ERR_KERNEL, later errors in details"
else
	fail "bad plan: rc=$rc: $out"
fi
node nft list ruleset >"$TMP/after"
check "ruleset unchanged after the rejected transaction" diff "$TMP/before" "$TMP/after"

echo "== apply plan 2 (replacement)"
check "apply2" driver apply2
expect_lines "plan 2 content" "chain pod_cccc {" "elements = { 10.1.0.6 : jump pod_cccc }" \
	"ip daddr @peers_db tcp dport 5432 accept comment \"default/allow-db egress[0]\"" \
	"chain as_nfv2 {"
expect_no_line "plan 1 objects gone" 'pod_aaaa|pod_bbbb|peers_web|blk_|as_nfv1|10\.1\.0\.5'
check_not "nft_chain_exists pod_aaaa = no" driver exists pod_aaaa
allow "p2 -> 10.1.0.20:5432/tcp" p2 tcp 10.1.0.20 5432
deny "p2 -> 10.1.0.20:5433/tcp" p2 tcp 10.1.0.20 5433
allow "p1 (no longer selected) -> 172.16.0.1:80/tcp" p1 tcp 172.16.0.1 80

echo "== incremental: from plan 1 to plan 2 and back, sending only the difference"
# what nft lists after a diff must equal what it lists after a full apply
# (chains are listed in creation order, hash-set elements in kernel order)
norm() { node nft list ruleset | python3 "$(dirname "$0")/nft_normalize.py"; }
check "full apply1" driver apply1
norm >"$TMP/full1"
check "full apply2" driver apply2
norm >"$TMP/full2"
check "full apply1 again" driver apply1
check "diff apply1 -> apply2" driver diff apply1 apply2
norm >"$TMP/diff2"
check "the ruleset after the diff equals plan 2 applied in full" diff -u "$TMP/full2" "$TMP/diff2"
allow "p2 -> 10.1.0.20:5432/tcp (after diff)" p2 tcp 10.1.0.20 5432
deny "p2 -> 10.1.0.20:5433/tcp (after diff)" p2 tcp 10.1.0.20 5433
check "diff apply2 -> apply1" driver diff apply2 apply1
norm >"$TMP/diff1"
check "and back: equals plan 1 applied in full" diff -u "$TMP/full1" "$TMP/diff1"
out=$(driver diff apply1 apply1 2>&1)
check "a diff of a plan with itself sends nothing" test "$out" = unchanged
# the kernel does not hold FROM: the diff is rejected whole, nothing changes
check "full apply2" driver apply2
node nft list ruleset >"$TMP/before-drift"
check_not "diff from a plan the kernel does not hold fails" driver diff apply1 apply2
node nft list ruleset >"$TMP/after-drift"
check "... and changes nothing" diff "$TMP/before-drift" "$TMP/after-drift"

echo "== empty plan, delete"
check "apply empty" driver empty
check "no netfence table left" bash -c "! ip netns exec $NODE nft list tables | grep -q netfence"
allow "p2 -> 10.1.0.20:5433/tcp (no plan)" p2 tcp 10.1.0.20 5433
check "nft_delete_all without tables" driver delete
check "apply1 again" driver apply1
check "nft_delete_all" driver delete
check "no netfence table left" bash -c "! ip netns exec $NODE nft list tables | grep -q netfence"
check "nft_delete_all again (idempotent)" driver delete
check_not "nft_chain_exists without a table = no" driver exists pod_aaaa

echo "== netdev tables: 32 by a hash of the veth; a full apply deletes netfence's stale ones, and only those"
has_table() { node nft list tables | grep -qxF "table $1"; }
has_chain() { node nft list chain netdev "$1" "$2" >/dev/null 2>&1; }
check "apply1" driver apply1
node nft add table netdev netfence-stale \; add table netdev netfencex \; add table netdev other
# the single table of earlier builds, with a chain on nfv1
node nft add table netdev netfence \; add chain netdev netfence as_nfv1 \
	'{ type filter hook ingress device nfv1 priority -500 ; }' \; add rule netdev netfence as_nfv1 drop
check "apply2 (full)" driver apply2
check_not "  ... deleted earlier builds' table netdev netfence" has_table "netdev netfence"
check_not "  ... deleted netfence-stale" has_table "netdev netfence-stale"
check_not "  ... deleted nfv1's chain (not in plan 2)" has_chain netfence-24 as_nfv1
check "  ... made nfv29's, in the same table" has_chain netfence-24 as_nfv29
check "  ... made nfv2's, in its table" has_chain netfence-17 as_nfv2
check "  ... left netfencex alone" has_table "netdev netfencex"
check "  ... left other alone" has_table "netdev other"
allow "p1 (the old table's drop gone) -> 172.16.0.1:80/tcp" p1 tcp 172.16.0.1 80
check "diff apply2 -> apply1" driver diff apply2 apply1
check "  ... made nfv1's chain" has_chain netfence-24 as_nfv1
check_not "  ... deleted nfv29's chain from the table that stays" has_chain netfence-24 as_nfv29
# as if nfvgone had been there at the full apply: its chain, alone in its table
node nft add table netdev netfence-02 \; add chain netdev netfence-02 as_nfvgone \
	'{ type filter hook ingress device nfvgone priority -500 ; }'
check "diff apply1 -> apply2" driver diff apply1 apply2
check_not "  ... deleted nfv1's chain" has_chain netfence-24 as_nfv1
check "  ... made nfv29's again" has_chain netfence-24 as_nfv29
check_not "  ... deleted nfvgone's table with its last chain" has_table "netdev netfence-02"
# a chain the kernel no longer has (its device went; older kernels drop it)
node ip link del nfv29
node nft delete chain netdev netfence-24 as_nfv29 2>/dev/null
check "diff apply2 -> apply1 with nfv29's chain already gone" driver diff apply2 apply1
node ip link add nfv29 type veth peer name nfp29
check "diff apply1 -> apply2" driver diff apply1 apply2
check "nft_delete_all" driver delete
check_not "  ... deleted nfv2's table" has_table "netdev netfence-17"
check_not "  ... deleted nfv29's table" has_table "netdev netfence-24"
check "  ... left netfencex and other alone" bash -c "ip netns exec $NODE nft list tables | grep -qxF 'table netdev netfencex' && ip netns exec $NODE nft list tables | grep -qxF 'table netdev other'"
node nft delete table netdev netfencex \; delete table netdev other

echo "== earlier builds' base chains, forward and input: a full apply replaces them with prerouting"
check "apply1" driver apply1
node nft delete chain inet netfence prerouting \; \
	add chain inet netfence forward '{ type filter hook forward priority filter ; policy accept ; }' \; \
	add rule inet netfence forward ct state established,related accept \; \
	add rule inet netfence forward ip saddr vmap @egress4 \; \
	add chain inet netfence input '{ type filter hook input priority filter ; policy accept ; }' \; \
	add rule inet netfence input drop
check_fails "the old layout" pod_aaaa 'chain "prerouting" is missing from table inet netfence'
deny "p2 -> 10.1.0.10:80/tcp (the old forward chain still dispatches to pod_bbbb)" p2 tcp 10.1.0.10 80
check "apply1 (full)" driver apply1
expect_no_line "  ... no base chain at forward or input" 'hook (forward|input)'
check "  ... nft_check_pod passes" driver check apply1 pod_aaaa
check "  ... pod_bbbb too" driver check apply1 pod_bbbb
deny "  ... p2 -> 10.1.0.10:80/tcp (prerouting dispatches to pod_bbbb)" p2 tcp 10.1.0.10 80
allow "  ... p1 -> 10.1.0.10:80/tcp (peers_web + 80)" p1 tcp 10.1.0.10 80

echo "== a plan with ${NFT_TEST_BIG:-20000} prefixes, hosts and dispatch entries"
n=${NFT_TEST_BIG:-20000}
check "apply big $n" driver big "$n"
cnt() { node nft -j list "$1" inet netfence "$2" | jq "[.nftables[] | select(.$1) | .$1.elem // [] | length] | add"; }
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1 [want $2, got $3]"; fi
}
check_eq "interval set holds $n prefixes" "$n" "$(cnt set big_blk)"
check_eq "host set holds $n addresses" "$n" "$(cnt set big_hosts)"
check_eq "egress4 holds $n entries" "$n" "$(cnt map egress4)"
check "nft_check_pod pod_big ($n-element sets and map)" driver check "big:$n" pod_big
node nft add element inet netfence big_blk '{ 10.250.0.0/16 }'
check_not "  ... fails after one prefix is added" driver check "big:$n" pod_big
check "empty after big" driver empty

echo "== the device of an antispoof chain goes away (kernel $(uname -r))"
check "apply1" driver apply1
node ip link del nfv1
if ruleset | grep -q 'chain as_nfv1'; then
	echo "info: as_nfv1 is still listed after its device was deleted (kernel keeps the chain, unbound)"
else
	echo "info: as_nfv1 was removed with its device"
fi
check "apply1 with nfv1 gone: as_nfv1 skipped" driver apply1
expect_no_line "as_nfv1 not created" 'as_nfv1'
check "delete" driver delete

if command -v valgrind >/dev/null; then
	echo "== valgrind"
	node ip link add nfv1 type veth peer name nfp1
	for c in apply1 "check apply1 pod_aaaa" "remove pod_aaaa as_nfv1 10.1.0.5 fd00::5" \
		"check apply1 pod_aaaa" "remove pod_aaaa as_nfv1 10.1.0.5" bad apply2 "exists pod_cccc" \
		"big 2000" "check big:2000 pod_big" empty delete "remove pod_aaaa as_nfv1 10.1.0.5"; do
		# shellcheck disable=SC2086
		node valgrind -q --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all \
			--error-exitcode=9 "$DRIVER" $c >"$TMP/vg.out" 2>&1
		rc=$?
		if [ $rc = 9 ] || grep -q '==[0-9]*==' "$TMP/vg.out"; then
			fail "valgrind $c: $(head -c 600 "$TMP/vg.out")"
		else
			ok "valgrind $c (exit $rc, no leak, no error)"
		fi
	done
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
