#!/bin/bash
# A routed chain: ptp + host-local + netfence (testdata/conflist/ptp-netfence.conflist
# with its paths pointed at our private dirs), IPv4 and IPv6. With ptp every
# pod has its own veth, the host side carries the gateway address and the
# node routes each pod's /32 (/128) to it: no bridge, no br_netfilter, the
# traffic is routed through the forward hook (or the input hook for the
# node's own addresses). The seed manifest's verdicts must hold there too.
set -u
. "$(dirname "$0")/lib.sh"

NFC_DENY_TIMEOUT=${NFC_DENY_TIMEOUT:-800}
SEED=$NFC_ROOT/testdata/foo-deny-external-egress.yaml
nfc_setup_node
STATE=$NFC_DIR/state.json
PDIR=$NFC_DIR/net.d-ptp
mkdir -p "$PDIR"
jq --arg s "$STATE" --arg d "$NFC_DIR/ipam" \
	'.plugins[0].ipMasq = false | .plugins[0].ipam.dataDir = $d | .plugins[-1].stateFile = $s' \
	"$NFC_ROOT/testdata/conflist/ptp-netfence.conflist" >"$PDIR/ptpnet.conflist"
jq -e '.plugins[0].type == "ptp"' "$PDIR/ptpnet.conflist" >/dev/null || nfc_die "ptp conflist"
ptp_pod() { nfc_pod_net "$PDIR" ptpnet "$@" || nfc_die "pod $1 (ptp)"; }

echo "== seed manifest, then pods on ptp"
nfc_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" -f "$SEED" >/dev/null 2>&1 || nfc_die "apply seed"
ptp_pod foo default app:foo
ptp_pod dns kube-system k8s-app:kube-dns
ptp_pod bar default app:bar
nfc_serve dns udp 53
nfc_serve dns tcp 53
nfc_serve dns tcp 8080
nfc_serve dns udp 5353
nfc_serve foo tcp 8080
nfc_external
nfc_serve node tcp 80

r=$NFC_DIR/pods/foo.result
nfc_check "foo's result: two interfaces (host veth, eth0), no bridge" \
	jq -e '(.interfaces | length == 2) and ([.interfaces[] | select(.sandbox == null)] | length == 1)' "$r"
veth=$(cat "$NFC_DIR/pods/foo.veth")
nfc_check "foo's host veth $veth is a veth in the node" sh -c "ip netns exec $NFC_NODE ip -d link show '$veth' | grep -qw veth"
nfc_check "the node routes foo's IPv4 /32 to $veth" sh -c "ip netns exec $NFC_NODE ip route show '$(nfc_ip foo 4)' | grep -q 'dev $veth'"
gw4=$(jq -r '[.ips[] | select(.address | contains(":") | not)][0].gateway' "$r")
gw6=$(jq -r '[.ips[] | select(.address | contains(":"))][0].gateway // empty' "$r")
nfc_check "the host side of foo's veth has the gateway address $gw4" \
	sh -c "ip netns exec $NFC_NODE ip -4 addr show dev '$veth' | grep -qw 'inet $gw4'"
nfc_check "foo is guarded on its veth (chain as_$veth of a table netdev netfence-NN)" \
	test -n "$(nfc_as_table "$veth")"
nfc_check "netfencectl get pods: foo selected by the seed policy" \
	sh -c "ip netns exec $NFC_NODE env NETFENCE_STATE=$STATE $NFC_NETFENCECTL get pods | grep -E '^foo ' | grep -q foo-deny-external-egress"

V6=0
if [ -s "$NFC_DIR/pods/foo.ip6" ] && [ -s "$NFC_DIR/pods/dns.ip6" ] && [ -n "$gw6" ]; then V6=1; fi
nfc_check "ptp is dual-stack here (IPv6 address and gateway)" test $V6 = 1

for v in 4 6; do
	[ $v = 6 ] && [ $V6 = 0 ] && continue
	if [ $v = 4 ]; then ext=$NFC_EXT4 up=$NFC_EXTGW4 gw=$gw4; else ext=$NFC_EXT6 up=$NFC_EXTGW6 gw=$gw6; fi
	dns=$(nfc_ip dns $v)
	echo "-- foo, IPv$v"
	nfc_expect_allow foo udp "$dns" 53 "dns pod"
	nfc_expect_allow foo tcp "$dns" 53 "dns pod"
	nfc_expect_deny foo tcp "$dns" 8080 "dns pod, other port"
	nfc_expect_deny foo udp "$dns" 5353 "dns pod, other port"
	nfc_expect_deny foo tcp "$ext" 80 "external"
	nfc_expect_deny foo udp "$ext" 53 "external DNS"
	nfc_expect_deny foo tcp "$gw" 80 "node's address (ptp gateway)"
	nfc_expect_deny foo tcp "$up" 80 "node's address (uplink)"
	echo "-- bar (no app=foo), IPv$v"
	nfc_expect_allow bar tcp "$ext" 80 "external"
	nfc_expect_allow bar udp "$ext" 53 "external DNS"
	nfc_expect_allow bar tcp "$dns" 8080 "dns pod, other port"
	nfc_expect_allow bar tcp "$gw" 80 "node's address (ptp gateway)"
	nfc_expect_allow bar tcp "$(nfc_ip foo $v)" 8080 "into foo"
	nfc_expect_allow dns tcp "$(nfc_ip foo $v)" 8080 "into foo"
	nfc_check_not "IPv$v: dns's 8080/tcp server never saw foo" nfc_server_saw dns tcp 8080 "$(nfc_ip foo $v)"
	nfc_check_not "IPv$v: node's 80/tcp server never saw foo" nfc_server_saw node tcp 80 "$(nfc_ip foo $v)"
done

echo "-- identity on ptp: foo forging bar's address gains nothing"
nfc_serve external udp 5353
bar4=$(nfc_ip bar 4)
nfc_in foo ip addr add "$bar4/32" dev eth0
nfc_in foo "$NFC_PROBE" connect --src "$bar4" udp "$NFC_EXT4" 5353 1000 >/dev/null 2>&1
nfc_check_not "external never saw a datagram from foo posing as bar ($bar4)" nfc_server_saw external udp 5353 "$bar4"
nfc_in foo ip addr del "$bar4/32" dev eth0
nfc_in bar "$NFC_PROBE" connect udp "$NFC_EXT4" 5353 2000 >/dev/null 2>&1
nfc_check "the same server does log the real bar" nfc_server_saw external udp 5353 "$bar4"
# control: on this routed path a forged source does get through from a pod
# netfence does not guard (bar is not selected), so the check above means something
dns4=$(nfc_ip dns 4)
nfc_in bar ip addr add "$dns4/32" dev eth0
nfc_in bar "$NFC_PROBE" connect --src "$dns4" udp "$NFC_EXT4" 5353 1000 >/dev/null 2>&1
nfc_in bar ip addr del "$dns4/32" dev eth0
nfc_check "(control: a datagram from unguarded bar posing as dns ($dns4) does arrive)" nfc_server_saw external udp 5353 "$dns4"

nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan
nfc_check "CHECK of foo on ptp" nfc_cni check foo

echo "-- delete the policy: foo is unrestricted"
nfc_check "netfencectl delete -f seed" nfc_ctl delete -f "$SEED"
nfc_expect_allow foo tcp "$NFC_EXT4" 80 "external"
[ $V6 = 1 ] && nfc_expect_allow foo tcp "$NFC_EXT6" 80 "external"
nfc_expect_allow foo tcp "$gw4" 80 "node's address (ptp gateway)"

echo "-- DEL on ptp leaves no trace"
nfc_ctl apply -f "$SEED" >/dev/null 2>&1
ip4=$(nfc_ip foo 4)
nfc_pod_del foo
rs=$(nfc_in node nft list ruleset)
nfc_check_not "no trace of foo's veth $veth" grep -qF "$veth" <<<"$rs"
nfc_check_not "no trace of foo's address $ip4" grep -qwF "$ip4" <<<"$rs"

nfc_summary
