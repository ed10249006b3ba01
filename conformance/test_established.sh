#!/bin/bash
# Established connections when a policy changes (documented in README,
# "Established connections"): a change that takes a permission away from a
# pod deletes the conntrack entries the pod originated, so each of its flows
# is judged again by its next packet: flows the new rules still allow go on,
# the others stop. Loosening never interrupts a flow.
set -u
. "$(dirname "$0")/lib.sh"

NFC_PLUGIN_NETFENCE=1
FLOW=$NFC_CONF_DIR/flow.py
nfc_setup_node
nfc_pod_plain web default app:web
nfc_pod_plain foo default app:foo
for p in 7000 7002; do nfc_bg web "flow-tcp-$p" python3 "$FLOW" serve tcp $p "$NFC_DIR"; done
for p in 7001 7003; do nfc_bg web "flow-udp-$p" python3 "$FLOW" serve udp $p "$NFC_DIR"; done
sleep 0.5

policy() { # name ports...
	local name=$1 p
	shift
	{
		cat <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: $name, namespace: default}
spec:
  podSelector: {matchLabels: {app: foo}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports:
YAML
		for p in "$@"; do echo "    - {port: ${p%/*}, protocol: ${p#*/}}"; done
	} >"$NFC_DIR/$name.yaml"
	nfc_ctl apply -f "$NFC_DIR/$name.yaml"
}

# within TENTHS CMD...: CMD succeeds within TENTHS tenths of a second (polled)
within() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
	return 1
}
# flow_start ID proto port family [POD [FROM]]: a long-lived flow FROM (foo) -> POD (web)
flow_start() {
	local id=$1 proto=$2 port=$3 v=$4 to=${5:-web} from=${6:-foo} d=$NFC_DIR/flow-$1
	mkdir -p "$d"
	nfc_bg "$from" "flow-$id" python3 "$FLOW" client "$proto" "$(nfc_ip "$to" "$v")" "$port" "$d"
	within 50 test -e "$d/connected"
}
# flow_ping ID: send on the flow, print ok|timeout
flow_ping() {
	local d=$NFC_DIR/flow-$1 n
	n=$(ls "$d" | grep -c '^res\.')
	touch "$d/go.$n"
	for _ in $(seq 40); do [ -e "$d/res.$n" ] && { cat "$d/res.$n"; return; }; sleep 0.1; done
	echo "no answer from the flow tool"
}
expect_flow() { # ID ok|timeout DESC
	local got
	got=$(flow_ping "$1")
	nfc_check "$3: $got (want $2)" test "$got" = "$2"
}

echo "== a policy allowing 7000-7003, flows on every port, both families"
policy foo-egress 7000/TCP 7001/UDP 7002/TCP 7003/UDP
for v in 4 6; do
	nfc_check "start tcp/7000 v$v" flow_start t0-$v tcp 7000 $v
	nfc_check "start udp/7001 v$v" flow_start u1-$v udp 7001 $v
	nfc_check "start tcp/7002 v$v" flow_start t2-$v tcp 7002 $v
	nfc_check "start udp/7003 v$v" flow_start u3-$v udp 7003 $v
	for f in t0 u1 t2 u3; do expect_flow $f-$v ok "IPv$v $f flows"; done
done

echo "== loosening (a second policy adds a port): every flow goes on"
policy foo-extra 8080/TCP >/dev/null
for v in 4 6; do for f in t0 u1 t2 u3; do expect_flow $f-$v ok "IPv$v $f after loosening"; done; done

echo "== tightening to 7000/TCP + 7001/UDP: those flows go on, 7002 and 7003 stop"
nfc_ctl delete networkpolicy foo-extra >/dev/null
policy foo-egress 7000/TCP 7001/UDP
for v in 4 6; do
	expect_flow t0-$v ok "IPv$v tcp/7000, still allowed"
	expect_flow u1-$v ok "IPv$v udp/7001, still allowed"
	expect_flow t2-$v timeout "IPv$v tcp/7002, no longer allowed"
	expect_flow u3-$v timeout "IPv$v udp/7003, no longer allowed"
	nfc_expect_deny foo tcp "$(nfc_ip web $v)" 7002 "new connection to 7002"
done

echo "== re-judging (enforce/txn.h): the established flows a pod started are judged by its chain while its address is in rejudge4/rejudge6"
# Done by hand here, so that no conntrack walk is involved: foo's chain is
# made to drop everything; its established flows go on until its address
# is in the set, and only then; a flow foo answers (web -> foo) goes on.
rejudge_left() { # the marker, addresses in the sets, rules using them
	{ ls "$NFC_DIR" | grep 'state.json.rejudge'; nfc_in node nft list set inet netfence rejudge4 | grep elements
	  nfc_in node nft list set inet netfence rejudge6 | grep elements
	  nfc_in node nft list chain inet netfence prerouting | grep '@rejudge'; } 2>/dev/null
}
rejudged() { [ -z "$(rejudge_left)" ]; } # a worker left nothing
# (first the tightening's child, a second later, deletes the entries of
# foo's flows; their next packets make new ones)
within 50 rejudged
for v in 4 6; do expect_flow u1-$v ok "IPv$v udp/7001 once the tightening's child is done"; done
foo4=$(nfc_ip foo 4)
nfc_bg foo flow-udp-7101 python3 "$FLOW" serve udp 7101 "$NFC_DIR"
sleep 0.3
nfc_check "start udp web -> foo:7101" flow_start r1-4 udp 7101 4 foo web
expect_flow r1-4 ok "web -> foo udp/7101"
kind=$(nfc_in node nft list map inet netfence egress4 | grep -oE "$foo4 : jump kind_[0-9a-f]+" | grep -oE 'kind_[0-9a-f]+')
nfc_check "foo's kind chain found ($kind)" test -n "$kind"
nfc_in node nft flush chain inet netfence "$kind"
nfc_in node nft add rule inet netfence "$kind" counter drop
expect_flow u1-4 ok "IPv4 udp/7001 with foo's chain dropping all, not in the set: the established shortcut"
nfc_check "no re-judging rule in the base chains when nothing is being re-judged" \
	sh -c "! ip netns exec $NFC_NODE nft list chain inet netfence prerouting | grep -q rejudge"
nfc_in node nft insert rule inet netfence prerouting ip saddr @rejudge4 ct state established,related ct direction original ip saddr vmap @egress4
expect_flow u1-4 ok "IPv4 udp/7001 with the re-judging rule but foo's address not in rejudge4"
nfc_in node nft add element inet netfence rejudge4 "{ $foo4 }"
expect_flow u1-4 timeout "IPv4 udp/7001 with foo's address in rejudge4: judged by the chain"
expect_flow u1-6 ok "IPv6 udp/7001, foo's IPv6 address not in rejudge6"
expect_flow r1-4 ok "web -> foo udp/7101 (foo answers: reply direction, not judged)"
nfc_in node nft delete element inet netfence rejudge4 "{ $foo4 }"
expect_flow u1-4 ok "IPv4 udp/7001 once out of the set again"
touch "$NFC_DIR/flow-r1-4/stop"
nfc_check "netfencectl sync puts the chain back" nfc_ctl sync
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan
expect_flow u1-4 ok "IPv4 udp/7001 after sync"

echo "== a tightening apply leaves no re-judging behind once its child is done"
policy foo-egress 7000/TCP >/dev/null
nfc_check "right after the apply, foo's addresses are in the rejudge sets" \
	sh -c "ip netns exec $NFC_NODE nft list set inet netfence rejudge4 | grep -q '$foo4'"
nfc_check "... and the re-judging rule heads the base chain" \
	sh -c "ip netns exec $NFC_NODE nft list chain inet netfence prerouting | grep -A1 'policy accept' | grep -q '@rejudge4'"
expect_flow u1-4 timeout "IPv4 udp/7001, no longer allowed"
expect_flow t0-4 ok "IPv4 tcp/7000, still allowed"
within 50 rejudged
nfc_check "then the child empties them, removes the rules and the marker (left: $(rejudge_left | tr '\n' ' '))" test -z "$(rejudge_left)"
nfc_check "foo's conntrack entries to udp/7001 are gone (walked by the child)" \
	sh -c "! ip netns exec $NFC_NODE cat /proc/net/nf_conntrack | grep -E 'udp .*src=$foo4 .*dport=7001 ' | grep -v UNREPLIED | grep -q ."
policy foo-egress 7000/TCP 7001/UDP >/dev/null

echo "== a marker no child holds (its child died) gets a worker from the next change"
nfc_in node nft add element inet netfence rejudge4 "{ $foo4 }"
: >"$NFC_DIR/state.json.rejudge"
nfc_ctl apply -f "$NFC_DIR/foo-egress.yaml" >/dev/null
within 50 rejudged
nfc_check "the marker is gone and rejudge4 is empty (left: $(rejudge_left | tr '\n' ' '))" test -z "$(rejudge_left)"

echo "== ... and from an ADD or a DEL (a change killed after its transaction, before it handed its marker over)"
nfc_in node nft insert rule inet netfence prerouting ip saddr @rejudge4 ct state established,related ct direction original ip saddr vmap @egress4
nfc_in node nft add element inet netfence rejudge4 "{ $foo4 }"
: >"$NFC_DIR/state.json.rejudge"
nfc_check "ADD of a pod with the killed change's marker, rule and addresses left" nfc_pod adopt1 default app:bar
within 50 rejudged
nfc_check "the marker, rule and rejudge4 are gone (left: $(rejudge_left | tr '\n' ' '))" test -z "$(rejudge_left)"
nfc_in node nft insert rule inet netfence prerouting ip saddr @rejudge4 ct state established,related ct direction original ip saddr vmap @egress4
: >"$NFC_DIR/state.json.rejudge"
nfc_check "DEL of that pod with a marker and rule left" nfc_pod_del adopt1
within 50 rejudged
nfc_check "the marker and rule are gone (left: $(rejudge_left | tr '\n' ' '))" test -z "$(rejudge_left)"

echo "== ... and from the worker of the change before it (killed after it wrote its token into a marker a worker holds)"
policy foo-egress 7000/TCP >/dev/null
nfc_check "a tightening apply: its worker holds the marker" \
	sh -c "! flock -n -x '$NFC_DIR/state.json.rejudge' true"
# the killed change: its token in the same marker, its address in the set,
# no worker of its own (the running one finds a token not its own)
printf '%016x' 4660 | dd of="$NFC_DIR/state.json.rejudge" conv=notrunc status=none
nfc_in node nft add element inet netfence rejudge6 "{ $(nfc_ip foo 6) }"
within 50 rejudged
nfc_check "the running worker took it over: marker, rules and sets are gone (left: $(rejudge_left | tr '\n' ' '))" \
	test -z "$(rejudge_left)"
policy foo-egress 7000/TCP 7001/UDP >/dev/null
within 50 rejudged

echo "== the policy is deleted: the surviving flows go on"
nfc_ctl delete networkpolicy foo-egress >/dev/null
for v in 4 6; do
	expect_flow t0-$v ok "IPv$v tcp/7000 after delete"
	expect_flow u1-$v ok "IPv$v udp/7001 after delete"
done
for d in "$NFC_DIR"/flow-*; do touch "$d/stop"; done

echo "== a DEL deletes the conntrack entries from and to the pod's addresses, and only those"
# (so a pod that later gets the address inherits none of them). The cleanup
# runs after the plugin returns (enforce/nlsock.h); the next ADD waits for it.
nfc_pod_plain web2 default app:web2
nfc_bg web2 flow-tcp2-7000 python3 "$FLOW" serve tcp 7000 "$NFC_DIR"
sleep 0.5
cat >"$NFC_DIR/foo-webs.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: foo-webs, namespace: default}
spec:
  podSelector: {matchLabels: {app: foo}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchExpressions: [{key: app, operator: In, values: [web, web2]}]}}]
    ports: [{port: 7000, protocol: TCP}]
YAML
nfc_ctl apply -f "$NFC_DIR/foo-webs.yaml" >/dev/null
ct_has() { # ADDR: an entry of the node netns mentions it (IPv6 written in full there)
	local a
	a=$(python3 -c 'import ipaddress, sys; print(ipaddress.ip_address(sys.argv[1]).exploded)' "$1")
	nfc__nsexec "$NFC_NODE" cat /proc/net/nf_conntrack | grep -qE "(src|dst)=$a "
}
for v in 4 6; do
	nfc_check "start tcp/7000 to web v$v" flow_start dw-$v tcp 7000 $v web
	nfc_check "start tcp/7000 to web2 v$v" flow_start dw2-$v tcp 7000 $v web2
	expect_flow dw-$v ok "IPv$v foo -> web"
	expect_flow dw2-$v ok "IPv$v foo -> web2"
done
web4=$(nfc_ip web 4) web6=$(nfc_ip web 6) web2_4=$(nfc_ip web2 4) web2_6=$(nfc_ip web2 6)
for a in "$web4" "$web6" "$web2_4" "$web2_6"; do nfc_check "conntrack has entries of $a" ct_has "$a"; done
# netfence's part of web's DEL, then at once an ADD of a pod with web's
# addresses (as if host-local handed them out again): it must return only
# once they are clean
nfconf() { jq -cn --arg s "$NFC_DIR/state.json" --argjson pr "${1:-null}" \
	'{cniVersion: "1.0.0", name: "nfc", type: "netfence", stateFile: $s} + (if $pr == null then {} else {prevResult: $pr} end)'; }
web_cid=$(jq -r '.pods[] | select(.name == "web") | .containerID' "$NFC_DIR/state.json")
reuse_pr=$(jq -cn --arg a "$web4/16" --arg b "$web6/64" '{cniVersion: "1.0.0",
	interfaces: [{name: "nfcghost0"}, {name: "eth0", sandbox: "/var/run/netns/ghost"}],
	ips: [{interface: 1, address: $a}, {interface: 1, address: $b}]}')
nfconf | nfc_netfence CNI_COMMAND=DEL CNI_CONTAINERID="$web_cid" CNI_NETNS= CNI_IFNAME=eth0 >/dev/null
nfconf "$reuse_pr" | nfc_netfence CNI_COMMAND=ADD CNI_CONTAINERID=reuse1 CNI_NETNS=/var/run/netns/ghost \
	CNI_IFNAME=eth0 "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=reuse" >"$NFC_DIR/reuse.out"
nfc_check "ADD of a pod with web's addresses right after web's DEL" jq -e '.ips | length == 2' "$NFC_DIR/reuse.out"
gone=1
for a in "$web4" "$web6"; do ct_has "$a" && gone=""; done
nfc_check "when that ADD returns, no conntrack entry from or to those addresses remains" test -n "$gone"
nfconf | nfc_netfence CNI_COMMAND=DEL CNI_CONTAINERID=reuse1 CNI_NETNS= CNI_IFNAME=eth0 >/dev/null
# The same, with the cleanup's lock held by this script for a second: the
# ADD must return after it is released. A file still there once released is
# a cleanup that died before its work was done: the ADD does it (web2, not
# selected, makes an entry to web's address first), then removes the file.
# reuse1's DEL left a cleanup of web's addresses of its own, whose child
# flushes them a second later: wait for it to be done, or it may take the
# entry made here (it did, on a slow machine, with a fixed 0.5 s sleep).
within 100 test ! -e "$NFC_DIR/state.json.conntrack-$web4"
nfc_expect_allow web2 udp "$web4" 5353 "an entry to web's old address"
nfc_check "conntrack has it" ct_has "$web4"
lockf=$NFC_DIR/state.json.conntrack-$web4
flock -x "$lockf" -c "touch '$NFC_DIR/locked'; sleep 1; touch '$NFC_DIR/released'" &
holder=$!
within 50 test -e "$NFC_DIR/locked"
nfconf "$reuse_pr" | nfc_netfence CNI_COMMAND=ADD CNI_CONTAINERID=reuse2 CNI_NETNS=/var/run/netns/ghost \
	CNI_IFNAME=eth0 "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=reuse" >/dev/null
nfc_check "an ADD of an address whose cleanup holds its lock returns after the lock is released" \
	test -e "$NFC_DIR/released"
wait "$holder"
nfc_check_not "... removes the lock file" test -e "$lockf"
nfc_check_not "... and did the dead cleanup's work: no entry of $web4" ct_has "$web4"
nfconf | nfc_netfence CNI_COMMAND=DEL CNI_CONTAINERID=reuse2 CNI_NETNS= CNI_IFNAME=eth0 >/dev/null
nfc_check "the rest of web's DEL (cnitool)" nfc_pod_del web
no_ct_locks() { ! ls "$NFC_DIR" | grep -q 'state.json.conntrack'; }
nfc_check "no conntrack lock file is left behind" within 30 no_ct_locks
# foo lost the permission to reach web's addresses, not any other: its flows
# to web2 keep their entries (checked before any packet could re-create one)
for a in "$web2_4" "$web2_6"; do nfc_check "the entries of $a are untouched" ct_has "$a"; done
for v in 4 6; do expect_flow dw2-$v ok "IPv$v foo -> web2 after web's DEL"; done
for d in "$NFC_DIR"/flow-*; do touch "$d/stop"; done
# a DEL no ADD follows: its child cleans up after the DEL returned
sleep 1
nfc_check "web2's DEL (cnitool)" nfc_pod_del web2
web2_lock=$NFC_DIR/state.json.conntrack-$web2_4
within 50 test ! -e "$web2_lock"
nfc_check_not "its cleanup ran and removed its file" test -e "$web2_lock"
for a in "$web2_4" "$web2_6"; do nfc_check_not "... no entry of $a is left" ct_has "$a"; done
# the state files the saves replace (README, "State file"): a save that is
# no DEL parks the one "<state>.prev" named before as "<state>.old.N",
# the child of the next DEL deletes them
old_left() { compgen -G "$NFC_DIR/state.json.old.*"; }
no_old() { ! old_left >/dev/null; }
nfc_check "... and, after it, deleted the parked state files" within 50 no_old
nfc_check "ADD of old1" nfc_pod old1 default app:bar
nfc_check "... parks the file <state>.prev named before as <state>.old.N" old_left
nfc_check "DEL of old1" nfc_pod_del old1
nfc_check "... whose child deletes it" within 50 no_old
nfc_summary
