#!/bin/bash
# NP-14 (np14.md of the design notes): the verdict table for the seed's manifest and for the
# in-cluster variant, IPv4 and IPv6, with real plugins (bridge + host-local +
# netfence) and netfencectl, plus the rows that must stay unaffected: pods
# without app=foo reach everything, connections into foo work, and a forged
# source address gains foo nothing.
#
# Order on purpose: the seed's policy exists before any pod; foo is ADDed
# before kube-dns exists (kube-dns's address must reach foo's allow-list when
# it arrives); the in-cluster variant replaces it while all pods run.
set -u
. "$(dirname "$0")/lib.sh"

SEED=$NFC_ROOT/testdata/foo-deny-external-egress.yaml
INCLUSTER=$NFC_ROOT/testdata/foo-deny-external-egress-incluster.yaml
NFC_PLUGIN_NETFENCE=1
nfc_setup_node

# allow|deny helper: VERDICT POD PROTO ADDR PORT DESC
expect() {
	local v=$1
	shift
	case $v in
	allow) nfc_expect_allow "$@" ;;
	deny) nfc_expect_deny "$@" ;;
	*) nfc_die "expect: $v" ;;
	esac
}

# The table of np14.md for foo; $1 = seed|incluster.
np14_table() {
	local col=$1 v dns web ext node extgw dnssvc websvc
	# pick SEED_VERDICT INCLUSTER_VERDICT
	pick() { [ "$col" = seed ] && echo "$1" || echo "$2"; }
	for v in 4 6; do
		echo "-- foo, IPv$v, $col manifest"
		dns=$(nfc_ip kube-dns $v) web=$(nfc_ip web $v)
		if [ $v = 4 ]; then
			dnssvc=$NFC_DNS_SVC4 websvc=$NFC_WEB_SVC4 ext=$NFC_EXT4 node=$NFC_NODE4 extgw=$NFC_EXTGW4
		else
			dnssvc=$NFC_DNS_SVC6 websvc=$NFC_WEB_SVC6 ext=$NFC_EXT6 node=$NFC_NODE6 extgw=$NFC_EXTGW6
		fi
		expect allow foo udp "$dns" 53 "kube-dns pod"
		expect allow foo tcp "$dns" 53 "kube-dns pod"
		expect allow foo udp "$dnssvc" 53 "kube-dns ClusterIP"
		expect allow foo tcp "$dnssvc" 53 "kube-dns ClusterIP"
		expect "$(pick deny allow)" foo tcp "$dns" 8080 "kube-dns pod, other port"
		expect "$(pick deny allow)" foo udp "$dns" 5353 "kube-dns pod, other port"
		expect "$(pick deny allow)" foo tcp "$web" 80 "web pod"
		expect "$(pick deny allow)" foo tcp "$websvc" 80 "web ClusterIP"
		expect "$(pick deny allow)" foo udp "$web" 5353 "web pod, other port"
		expect deny foo tcp "$ext" 80 "external (www.example.com)"
		expect "$(pick deny allow)" foo udp "$ext" 53 "external"
		expect "$(pick deny allow)" foo tcp "$ext" 53 "external"
		expect deny foo tcp "$node" 80 "node's own address (bridge gw)"
		expect deny foo tcp "$extgw" 80 "node's own address (uplink)"
		nfc_expect_resolve foo web "$dnssvc" "$websvc"
		nfc_expect_resolve foo www.example.com "$dnssvc" "$ext"
	done
	echo "-- foo, the seed's own commands"
	if [ "$col" = seed ]; then
		nfc_expect_http_deny foo http://web:80 "wget http://web:80 (seed Task 3: blocked under Kubernetes semantics)"
	else
		nfc_expect_http foo http://web:80 "wget http://web:80 (seed Task 3)" "hello from web"
	fi
	nfc_expect_http_deny foo http://www.example.com "wget http://www.example.com (seed Task 4)"
	nfc_expect_resolve foo web "$NFC_DNS_SVC4" "$NFC_WEB_SVC4"
	nfc_expect_resolve foo www.example.com "$NFC_DNS_SVC4" "$NFC_EXT4"
}

# Rows that must hold whatever the policy: bar is not selected; connections
# into foo (no ingress policy) and foo's replies pass.
unaffected() {
	local v foo
	for v in 4 6; do
		echo "-- unaffected, IPv$v"
		foo=$(nfc_ip foo $v)
		if [ $v = 4 ]; then
			set -- "$NFC_DNS_SVC4" "$NFC_WEB_SVC4" "$NFC_EXT4" "$NFC_NODE4"
		else
			set -- "$NFC_DNS_SVC6" "$NFC_WEB_SVC6" "$NFC_EXT6" "$NFC_NODE6"
		fi
		nfc_expect_allow bar udp "$1" 53 "kube-dns ClusterIP"
		nfc_expect_allow bar tcp "$(nfc_ip kube-dns $v)" 8080 "kube-dns pod, other port"
		nfc_expect_allow bar tcp "$(nfc_ip web $v)" 80 "web pod"
		nfc_expect_allow bar tcp "$2" 80 "web ClusterIP"
		nfc_expect_allow bar tcp "$3" 80 "external"
		nfc_expect_allow bar udp "$3" 53 "external"
		nfc_expect_allow bar tcp "$4" 80 "node's own address"
		nfc_expect_allow bar tcp "$foo" 8080 "into foo"
		nfc_expect_allow bar udp "$foo" 5353 "into foo"
		nfc_expect_allow web tcp "$foo" 8080 "into foo"
		nfc_expect_allow kube-dns udp "$foo" 5353 "into foo"
	done
}

echo "== seed manifest, applied before any pod exists"
out=$(nfc_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" -f "$SEED" 2>&1)
echo "$out"
nfc_check "apply prints what kubectl prints" \
	grep -qx 'networkpolicy.networking.k8s.io/foo-deny-external-egress created' <<<"$out"
nfc_cluster foo kube-dns web bar
ctl_lists_foo() { nfc_ctl get pods -A | grep -qw foo; }
nfc_check "netfencectl get pods lists foo" ctl_lists_foo
np14_table seed
for v in 4 6; do
	foo=$(nfc_ip foo $v)
	nfc_check_not "IPv$v: web's 8080/tcp server never saw foo" nfc_server_saw web tcp 8080 "$foo"
	nfc_check_not "IPv$v: web's 5353/udp server never saw foo" nfc_server_saw web udp 5353 "$foo"
	nfc_check_not "IPv$v: node's 80/tcp server never saw foo" nfc_server_saw node tcp 80 "$foo"
	nfc_check_not "IPv$v: external DNS never saw foo" grep -qw -- "from $foo" "$NFC_DIR/log/external-dnsmasq.log"
done

echo "-- identity: foo forging bar's address gains nothing"
nfc_serve external udp 5353
for v in 4 6; do
	bar=$(nfc_ip bar $v)
	[ $v = 4 ] && ext=$NFC_EXT4 plen=24 || ext=$NFC_EXT6 plen=64
	nfc_in foo ip addr add "$bar/$plen" dev eth0 nodad
	# The reply goes to the real bar, so look at what reached the server
	# (smoke_topology.sh shows the forged datagram does arrive without netfence).
	nfc_in foo "$NFC_PROBE" connect --src "$bar" udp "$ext" 5353 1000 >/dev/null 2>&1
	nfc_check_not "IPv$v: external never saw a datagram from foo posing as bar ($bar)" \
		nfc_server_saw external udp 5353 "$bar"
	nfc_in foo ip addr del "$bar/$plen" dev eth0
done
nfc_in bar "$NFC_PROBE" connect udp "$NFC_EXT4" 5353 2000 >/dev/null 2>&1
nfc_check "the same server does log the real bar" nfc_server_saw external udp 5353 "$(nfc_ip bar 4)"
unaffected

echo "== delete -f: foo is unrestricted again"
nfc_check "netfencectl delete -f seed" nfc_ctl delete -f "$SEED"
for v in 4 6; do
	if [ $v = 4 ]; then ext=$NFC_EXT4 node=$NFC_NODE4; else ext=$NFC_EXT6 node=$NFC_NODE6; fi
	nfc_expect_allow foo tcp "$(nfc_ip web $v)" 80 "web pod"
	nfc_expect_allow foo tcp "$ext" 80 "external"
	nfc_expect_allow foo tcp "$node" 80 "node's own address"
done

echo "== in-cluster variant, applied while every pod runs"
out=$(nfc_ctl apply -f "$INCLUSTER" 2>&1)
echo "$out"
nfc_check "apply prints what kubectl prints" \
	grep -qx 'networkpolicy.networking.k8s.io/foo-deny-external-egress created' <<<"$out"
np14_table incluster
unaffected

nfc_check "kernel ruleset == netfencectl show (libnftnl vs nft -f)" nfc_kernel_matches_plan

echo "-- foo restarted under the policy (DEL, new ADD)"
nfc_pod_del foo
nfc_pod_plain foo default app:foo
nfc_expect_allow foo tcp "$(nfc_ip web 4)" 80 "web pod"
nfc_expect_deny foo tcp "$NFC_EXT4" 80 "external"
nfc_expect_deny foo tcp "$NFC_EXT6" 80 "external"
nfc_expect_allow foo udp "$NFC_EXT6" 53 "external"

nfc_check "kernel ruleset == netfencectl show after re-ADD" nfc_kernel_matches_plan

echo "== delete -f in-cluster"
nfc_check "netfencectl delete -f in-cluster" nfc_ctl delete -f "$INCLUSTER"
nfc_expect_allow foo tcp "$NFC_EXT4" 80 "external"
nfc_expect_allow foo tcp "$NFC_EXT6" 80 "external"

echo "== DEL leaves no trace"
nfc_ctl apply -f "$SEED" >/dev/null 2>&1
nfc_pod_plain foo2 default app:foo
# foo2's ADD and foo's DEL change one pod's share only (plan_pod_delta)
nfc_check "kernel ruleset == netfencectl show after an ADD of a second selected pod" nfc_kernel_matches_plan
veth=$(cat "$NFC_DIR/pods/foo.veth")
ip4=$(nfc_ip foo 4)
ip6=$(nfc_ip foo 6)
nfc_check "foo's veth is guarded while it runs" sh -c "ip netns exec $NFC_NODE nft list ruleset | grep -qF 'device \"$veth\"'"
nfc_pod_del foo
nfc_check "kernel ruleset == netfencectl show after the DEL" nfc_kernel_matches_plan
rs=$(nfc_in node nft list ruleset)
nfc_check "foo2 is still filtered" grep -q "table inet netfence" <<<"$rs"
nfc_check_not "no trace of foo's veth $veth" grep -qF "$veth" <<<"$rs"
nfc_check_not "no trace of foo's addresses" grep -qwF -e "$ip4" -e "$ip6" <<<"$rs"
nfc_check_not "no state record of foo" sh -c "ip netns exec $NFC_NODE env NETFENCE_STATE=$NFC_DIR/state.json $NFC_NETFENCECTL get pods | grep -qw '^foo'"
nfc_pod_del foo2
rs=$(nfc_in node nft list ruleset)
nfc_check_not "nothing jumps to a kind's chain once no pod is selected" grep -q "jump kind_" <<<"$rs"
nfc_check "... but foo's kind's chain stays, idle, for its next pod (enforce/txn.h)" \
	test "$(grep -c "chain kind_" <<<"$rs")" = 1
nfc_check_not "... no anti-spoofing chain" grep -q "chain as_" <<<"$rs"
nfc_check "... the tables stay while the policy does" grep -q "table inet netfence" <<<"$rs"
nfc_check "kernel ruleset == netfencectl show with no pod selected" nfc_kernel_matches_plan
nfc_check "the kube-proxy table is untouched" grep -q "ip daddr 10.96.0.80" <<<"$rs"
nfc_check "the last egress policy deleted" nfc_ctl delete networkpolicy foo-deny-external-egress
rs=$(nfc_in node nft list ruleset)
nfc_check_not "no netfence table once no egress policy is left" grep -q netfence <<<"$rs"
nfc_check "the kube-proxy table is still untouched" grep -q "ip daddr 10.96.0.80" <<<"$rs"

nfc_summary
