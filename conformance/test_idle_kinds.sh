#!/bin/bash
# Idle kinds (enforce/txn.h): a DEL of the last pod of a kind leaves the
# kind's chain in the kernel, with nothing jumping to it, for the next pod
# of that kind; the chain follows every policy change while idle (a stale
# chain would let a pod out that the policies now confine); the conflist's
# "idleKindChains" caps how many the node keeps (the oldest goes), and 0
# keeps none. (A bad "idleKindChains": test_bad_input.sh.)
set -u
. "$(dirname "$0")/lib.sh"

NFC_DENY_TIMEOUT=${NFC_DENY_TIMEOUT:-800}
nfc_setup_node
STATE=$NFC_DIR/state.json
CONF=$NFC_DIR/net.d/nfc.conflist
cp "$CONF" "$NFC_DIR/nfc.conflist.orig"
nfc_external
# port 80: its httpd
nfc_serve external tcp 81

web_policy() { # PORT: pods app=web may reach the external host on PORT only
	nfc_ctl apply -f - <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: $NFC_EXT4/32}}], ports: [{port: $1}]}]
YAML
}
chain_handle() { # CHAIN: its handle, "" when the kernel has no such chain
	nfc_in node nft -a list chain inet netfence "$1" 2>/dev/null | sed -n 's/.*chain .* # handle \([0-9]*\)$/\1/p'
}
nidle() { jq '[.pods[] | select(.idle)] | length' "$STATE"; }
jumps_to() { nfc_in node nft list ruleset | grep -qE ": jump $1\b"; }

echo "== the last pod of a kind goes: its chain stays, idle"
# another pod keeps IPv4 in use on the node: with no pod address of a
# family, no chain has rules of that family (enforce/compile.c)
nfc_check "keep (app=keep, selected by no policy) attached" nfc_pod keep default app:keep
nfc_check "policy web-out (port 80)" web_policy 80
nfc_check "w1 (app=web) attached" nfc_pod w1 default app:web
cp "$NFC_DIR/pods/w1.result" "$NFC_DIR/w1.result"
w1_cid=$(jq -r '.pods[] | select(.name == "w1") | .containerID' "$STATE")
nfc_expect_allow w1 tcp "$NFC_EXT4" 80 "external, port 80 (allowed)"
nfc_expect_deny w1 tcp "$NFC_EXT4" 81 "external, port 81 (not allowed)"
chain=$(nfc_kind_chain w1)
handle=$(chain_handle "$chain")
nfc_check "w1 jumps to its kind's chain [$chain, handle $handle]" test -n "$chain" -a -n "$handle"
nfc_pod_del w1
nfc_check "after w1's DEL the chain is still there" test -n "$(chain_handle "$chain")"
nfc_check_not "... and nothing jumps to it" jumps_to "$chain"
nfc_check "the state has one idle kind" test "$(nidle)" = 1
nfc_check "... of w1's namespace and labels, and nothing else: no container, name, address or veth" \
	jq -e '[.pods[] | select(.idle)][0] | .namespace == "default" and .labels == {"app": "web"} and (.ips | length == 0) and
		.containerID == null and .ifname == null and .name == null and .hostVeth == null' "$STATE"
nfc_check_not "no record names w1's container [$w1_cid]" jq -e --arg c "$w1_cid" '.pods[] | select(.containerID == $c)' "$STATE"
nfc_check_not "netfencectl get pods does not list it" sh -c "ip netns exec $NFC_NODE env NETFENCE_STATE=$STATE $NFC_NETFENCECTL get pods -A | grep -qw w1"
nfc_check "kernel ruleset == netfencectl show with the kind idle" nfc_kernel_matches_plan
w1_plugin() { # COMMAND: bin/netfence alone, for w1's container
	jq -nc --arg s "$STATE" --slurpfile pr "$NFC_DIR/w1.result" \
		'{cniVersion: "1.0.0", name: "nfc", type: "netfence", stateFile: $s, prevResult: $pr[0]}' |
		nfc_netfence CNI_COMMAND="$1" CNI_CONTAINERID="$w1_cid" \
			CNI_NETNS=/var/run/netns/none CNI_IFNAME=eth0 CNI_PATH="$NFC_DIR/bin" \
			CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=w1;K8S_POD_LABELS=app:web"
}
out=$(w1_plugin CHECK 2>&1)
nfc_check "CHECK of w1's container fails: it is not attached [$(head -c 120 <<<"$out")]" \
	bash -c 'test "$(jq -r .code <<<"$1")" = 3' - "$out"
nfc_check "a second DEL of w1's container succeeds (CNI: DEL is idempotent)" w1_plugin DEL
nfc_check "... and changes nothing" test "$(nidle)" = 1 -a -n "$(chain_handle "$chain")"

echo "== the next pod of the kind takes the chain over"
nfc_check "w2 (app=web) attached" nfc_pod w2 default app:web
nfc_check "w2 jumps to the same chain [$chain]" test "$(nfc_kind_chain w2)" = "$chain"
nfc_check "... the same chain object, not made anew (handle $handle)" test "$(chain_handle "$chain")" = "$handle"
nfc_check "the state has no idle kind any more" test "$(nidle)" = 0
nfc_expect_allow w2 tcp "$NFC_EXT4" 80 "w2: external, port 80 (allowed)"
nfc_expect_deny w2 tcp "$NFC_EXT4" 81 "w2: external, port 81 (not allowed)"
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan

echo "== a policy change while the kind is idle changes its chain"
nfc_pod_del w2
nfc_check "idle again" test "$(nidle)" = 1 -a -n "$(chain_handle "$chain")"
nfc_check "web-out now allows port 81 only" web_policy 81
nfc_check "the idle chain has port 81" sh -c "ip netns exec $NFC_NODE nft list chain inet netfence $chain | grep -q 'dport 81 '"
nfc_check_not "... and no longer port 80" sh -c "ip netns exec $NFC_NODE nft list chain inet netfence $chain | grep -q 'dport 80 '"
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan
nfc_check "w3 (app=web) attached" nfc_pod w3 default app:web
nfc_check "w3 jumps to the kind's chain" test "$(nfc_kind_chain w3)" = "$chain"
nfc_expect_deny w3 tcp "$NFC_EXT4" 80 "w3: external, port 80 (no longer allowed)"
nfc_expect_allow w3 tcp "$NFC_EXT4" 81 "w3: external, port 81 (allowed now)"
nfc_pod_del w3

echo "== a policy that stops selecting the idle kind takes its chain away"
nfc_check "another egress policy keeps the tables" nfc_ctl apply -f - <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other, namespace: default}
spec:
  podSelector: {matchLabels: {app: other}}
  policyTypes: [Egress]
YAML
nfc_check "web-out deleted" nfc_ctl delete networkpolicy web-out
nfc_check "the idle kind's chain is gone with it" test -z "$(chain_handle "$chain")"
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan
nfc_check "web-out back (port 80)" web_policy 80
nfc_check "... and the idle kind's chain with it" test -n "$(chain_handle "$(nfc_in node nft list table inet netfence | grep -oE 'chain kind_[0-9a-f]+' | head -1 | cut -d' ' -f2)")"
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan
nfc_check "w4 (app=web) attached" nfc_pod w4 default app:web
nfc_expect_allow w4 tcp "$NFC_EXT4" 80 "w4: external, port 80 (allowed)"
nfc_expect_deny w4 tcp "$NFC_EXT4" 81 "w4: external, port 81 (not allowed)"
nfc_pod_del w4

echo "== idleKindChains: 1 keeps the kind that went idle last"
jq '.plugins[-1].idleKindChains = 1' "$NFC_DIR/nfc.conflist.orig" >"$CONF"
nfc_check "w5 (app=web) attached" nfc_pod w5 default app:web
nfc_check "a5 (app=api, a kind of its own) attached" nfc_pod a5 default app:api,x:y
nfc_check "a policy selecting app=api" nfc_ctl apply -f - <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-out, namespace: default}
spec:
  podSelector: {matchLabels: {app: api}}
  policyTypes: [Egress]
  egress: [{ports: [{port: 443}]}]
YAML
web_chain=$(nfc_kind_chain w5)
api_chain=$(nfc_kind_chain a5)
nfc_check "two kinds, two chains [$web_chain, $api_chain]" test -n "$web_chain" -a -n "$api_chain" -a "$web_chain" != "$api_chain"
nfc_pod_del w5
nfc_check "w5's DEL: web's kind idle" test "$(nidle)" = 1 -a -n "$(chain_handle "$web_chain")"
nfc_pod_del a5
nfc_check "a5's DEL: api's kind idle, web's dropped (one at most)" test "$(nidle)" = 1
nfc_check "... the idle one is api's" jq -e '[.pods[] | select(.idle)][0].labels.app == "api"' "$STATE"
nfc_check "... whose chain stays" test -n "$(chain_handle "$api_chain")"
nfc_check "... and web's chain is gone" test -z "$(chain_handle "$web_chain")"
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan
nfc_check "w6 (app=web) attached: its kind's chain made anew" nfc_pod w6 default app:web
nfc_check "... and jumped to [$web_chain]" test "$(nfc_kind_chain w6)" = "$web_chain"
nfc_expect_allow w6 tcp "$NFC_EXT4" 80 "w6: external, port 80 (allowed)"
nfc_expect_deny w6 tcp "$NFC_EXT4" 81 "w6: external, port 81 (not allowed)"

echo "== idleKindChains: 0 keeps none, and the next DEL drops those kept"
jq '.plugins[-1].idleKindChains = 0' "$NFC_DIR/nfc.conflist.orig" >"$CONF"
nfc_pod_del w6
nfc_check "w6's DEL: its kind's chain goes with it" test -z "$(chain_handle "$web_chain")"
nfc_check "... and api's idle kind, with its chain" test "$(nidle)" = 0 -a -z "$(chain_handle "$api_chain")"
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan

cp "$NFC_DIR/nfc.conflist.orig" "$CONF"

nfc_summary
