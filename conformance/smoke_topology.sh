#!/bin/bash
# The NP-14 topology without netfence: everything must be reachable. Checks
# the test bed itself (bridge, DNAT ClusterIPs, DNS, external host, node
# address), IPv4 and IPv6, before any policy test relies on it.
set -u
. "$(dirname "$0")/lib.sh"

NFC_PLUGIN_NETFENCE=0
nfc_setup_node
nfc_cluster foo kube-dns web bar

for v in 4 6; do
	echo "== IPv$v"
	dns=$(nfc_ip kube-dns $v) web=$(nfc_ip web $v) foo=$(nfc_ip foo $v)
	if [ $v = 4 ]; then
		dnssvc=$NFC_DNS_SVC4 websvc=$NFC_WEB_SVC4 ext=$NFC_EXT4 node=$NFC_NODE4 extgw=$NFC_EXTGW4
	else
		dnssvc=$NFC_DNS_SVC6 websvc=$NFC_WEB_SVC6 ext=$NFC_EXT6 node=$NFC_NODE6 extgw=$NFC_EXTGW6
	fi
	for p in foo bar; do
		nfc_expect_allow $p udp "$dns" 53 "kube-dns pod"
		nfc_expect_allow $p tcp "$dns" 53 "kube-dns pod"
		nfc_expect_allow $p udp "$dnssvc" 53 "kube-dns ClusterIP"
		nfc_expect_allow $p tcp "$dnssvc" 53 "kube-dns ClusterIP"
		nfc_expect_allow $p tcp "$dns" 8080 "kube-dns pod, other port"
		nfc_expect_allow $p tcp "$web" 80 "web pod"
		nfc_expect_allow $p tcp "$web" 8080 "web pod"
		nfc_expect_allow $p udp "$web" 5353 "web pod"
		nfc_expect_allow $p tcp "$websvc" 80 "web ClusterIP"
		nfc_expect_allow $p tcp "$ext" 80 "external"
		nfc_expect_allow $p udp "$ext" 53 "external"
		nfc_expect_allow $p tcp "$ext" 53 "external"
		nfc_expect_allow $p tcp "$node" 80 "node (bridge gw)"
		nfc_expect_allow $p tcp "$extgw" 80 "node (uplink)"
	done
	nfc_expect_allow bar tcp "$foo" 8080 "into foo"
	nfc_expect_allow bar udp "$foo" 5353 "into foo"
	nfc_expect_allow web tcp "$foo" 8080 "into foo"
	nfc_check "web saw foo's own IPv$v address (no SNAT) on 8080/tcp" nfc_server_saw web tcp 8080 "$foo"
	nfc_check "node saw foo's own IPv$v address on 80/tcp" nfc_server_saw node tcp 80 "$foo"
	nfc_expect_deny foo tcp "$web" 9 "web pod, closed port"

	nfc_expect_resolve foo web "$dnssvc" "$NFC_WEB_SVC4"
	nfc_expect_resolve foo web "$dns" "$NFC_WEB_SVC6"
	nfc_expect_resolve foo web.default.svc.cluster.local "$dnssvc" "$NFC_WEB_SVC4"
	nfc_expect_resolve foo www.example.com "$dnssvc" "$NFC_EXT4"
	nfc_expect_resolve foo www.example.com "$dns" "$NFC_EXT6"
	nfc_expect_resolve foo www.example.com "$ext" "$NFC_EXT4"
done

echo "== HTTP"
nfc_expect_http foo http://web/ "wget http://web/ (search path, ClusterIP)" "hello from web"
nfc_expect_http foo http://web.default.svc.cluster.local:80/ "" "hello from web"
nfc_expect_http foo "http://$NFC_WEB_SVC4/" "" "hello from web"
nfc_expect_http foo "http://[$NFC_WEB_SVC6]/" "" "hello from web"
nfc_expect_http foo "http://$(nfc_ip web 4)/" "" "hello from web"
nfc_expect_http foo "http://[$(nfc_ip web 6)]/" "" "hello from web"
nfc_expect_http foo http://www.example.com/ "" "hello from external"
nfc_expect_http foo "http://[$NFC_EXT6]/" "" "hello from external"
nfc_expect_http_deny foo http://nosuchname.example/ "wget of a name that does not resolve"

echo "== spoofing works in this test bed (the policy tests rely on it)"
nfc_serve external udp 5353
for v in 4 6; do
	bar=$(nfc_ip bar $v)
	[ $v = 4 ] && ext=$NFC_EXT4 plen=24 || ext=$NFC_EXT6 plen=64
	nfc_in foo ip addr add "$bar/$plen" dev eth0 nodad
	nfc_in foo "$NFC_PROBE" connect --src "$bar" udp "$ext" 5353 1000 >/dev/null 2>&1
	nfc_check "IPv$v: without netfence, external sees foo's datagram forged as bar ($bar)" \
		nfc_server_saw external udp 5353 "$bar"
	nfc_in foo ip addr del "$bar/$plen" dev eth0
done

echo "== CNI"
nfc_check "cnitool check foo" nfc_cni check foo
nfc_pod_plain baz default app:baz
nfc_check "cnitool del baz" nfc_cni del baz
nfc_check "cnitool del baz again" nfc_cni del baz
nfc_pod_del baz
nfc_pod_plain qux default app:qux
nfc_pod_gone qux
nfc_check "cnitool del qux after its netns is gone" nfc_cni del qux

nfc_summary
