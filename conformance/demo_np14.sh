#!/bin/bash
# The NP-14 recipe ("deny external egress"), acted out on a private node and
# printed as a table of what pod foo (app=foo) can reach: first with the
# recipe's manifest verbatim, then with the in-cluster variant. Every cell is
# a real connection attempt; a cell that differs from docs/np14.md's
# expected verdict is marked "!!" and makes the demo exit 1.
set -u
. "$(dirname "$0")/lib.sh"

NFC_PLUGIN_NETFENCE=1
NFC_DENY_TIMEOUT=${NFC_DENY_TIMEOUT:-1000}
SEED=$NFC_ROOT/testdata/foo-deny-external-egress.yaml
INCLUSTER=$NFC_ROOT/testdata/foo-deny-external-egress-incluster.yaml

echo "Setting up a private node: bridge + host-local + netfence, pods kube-dns, web, foo, bar,"
echo "an external host (www.example.com) and ClusterIPs for web and kube-dns ..."
nfc_setup_node
nfc_cluster >/dev/null
nfc_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" >/dev/null

mismatches=0
# try FROM PROTO ADDR PORT -> prints allowed/blocked
try() {
	if nfc_in "$1" "$NFC_PROBE" connect "$2" "$3" "$4" "$NFC_DENY_TIMEOUT" >/dev/null 2>&1; then
		echo allowed
	else
		echo blocked
	fi
}
resolve() {
	if nfc_in foo timeout 3 busybox nslookup "$1" "$NFC_DNS_SVC4" 2>/dev/null | grep -q "^Address.*$2"; then
		echo resolves
	else
		echo fails
	fi
}
cell() { # got expected
	if [ "$1" = "$2" ]; then printf '%-12s' "$1"; else printf '%-12s' "$1 !!"; mismatches=$((mismatches + 1)); fi
}

# description | proto | address | port | expected(seed) | expected(in-cluster) | from
rows() {
	local v=$1 dns web ext node websvc dnssvc
	dns=$(nfc_ip kube-dns "$v")
	web=$(nfc_ip web "$v")
	if [ "$v" = 4 ]; then
		ext=$NFC_EXT4 node=$NFC_NODE4 websvc=$NFC_WEB_SVC4 dnssvc=$NFC_DNS_SVC4
	else
		ext=$NFC_EXT6 node=$NFC_NODE6 websvc=$NFC_WEB_SVC6 dnssvc=$NFC_DNS_SVC6
	fi
	cat <<ROWS
kube-dns pod 53/udp|udp|$dns|53|allowed|allowed|foo
kube-dns pod 53/tcp|tcp|$dns|53|allowed|allowed|foo
kube-dns ClusterIP 53/udp|udp|$dnssvc|53|allowed|allowed|foo
kube-dns pod 8080/tcp (other port)|tcp|$dns|8080|blocked|allowed|foo
web pod 80/tcp|tcp|$web|80|blocked|allowed|foo
web ClusterIP 80/tcp|tcp|$websvc|80|blocked|allowed|foo
www.example.com 80/tcp (external)|tcp|$ext|80|blocked|blocked|foo
external 53/udp|udp|$ext|53|blocked|allowed|foo
the node's own address 80/tcp|tcp|$node|80|blocked|blocked|foo
bar (not selected) -> external 80/tcp|tcp|$ext|80|allowed|allowed|bar
bar (not selected) -> web pod 80/tcp|tcp|$web|80|allowed|allowed|bar
bar -> into foo 8080/tcp|tcp|$(nfc_ip foo "$v")|8080|allowed|allowed|bar
ROWS
}

declare -A got
run_column() { # column-name
	local col=$1 v desc proto addr port e1 e2 from
	for v in 4 6; do
		while IFS='|' read -r desc proto addr port e1 e2 from; do
			got["$col|$v|$desc"]=$(try "$from" "$proto" "$addr" "$port")
		done < <(rows $v)
	done
	got["$col|dns|web"]=$(resolve web "$NFC_WEB_SVC4")
	got["$col|dns|www"]=$(resolve www.example.com "$NFC_EXT4")
}

echo
echo "\$ netfencectl apply -f testdata/foo-deny-external-egress.yaml   # the recipe's manifest, verbatim"
nfc_ctl apply -f "$SEED"
run_column seed
nfc_ctl delete -f "$SEED" >/dev/null
echo
echo "\$ netfencectl apply -f testdata/foo-deny-external-egress-incluster.yaml   # DNS anywhere + any pod"
nfc_ctl apply -f "$INCLUSTER"
run_column incl

for v in 4 6; do
	echo
	printf '%-40s %-12s %-12s\n' "from foo (IPv$v) to" "recipe" "in-cluster"
	printf '%-40s %-12s %-12s\n' "----------------------------------------" "------" "----------"
	while IFS='|' read -r desc proto addr port e1 e2 from; do
		label=$desc
		[ "$from" = foo ] || label="* $desc"
		printf '%-40s ' "$label"
		cell "${got["seed|$v|$desc"]}" "$e1"
		cell "${got["incl|$v|$desc"]}" "$e2"
		echo
	done < <(rows $v)
done
echo
printf '%-40s ' "nslookup web"
cell "${got[seed|dns|web]}" resolves
cell "${got[incl|dns|web]}" resolves
echo
printf '%-40s ' "nslookup www.example.com"
cell "${got[seed|dns|www]}" resolves
cell "${got[incl|dns|www]}" resolves
echo
echo
echo "(* rows from another pod: netfence leaves pods no policy selects, and connections into foo, alone)"
echo "The recipe's text says foo -> web keeps working; under Kubernetes semantics its manifest blocks it."
echo "The in-cluster variant is what the recipe's text describes. See docs/np14.md."
if [ "$mismatches" -gt 0 ]; then
	echo "$mismatches cell(s) differ from the expected verdicts (marked !!)"
	exit 1
fi
echo "Every cell matches the expected verdicts."
