#!/bin/bash
# shellcheck disable=SC2016 # jq programs use $vars in single quotes
# bin/netfence against the CNI spec (cni-runtime-facts.md): direct
# invocations (VERSION, the error JSON and its codes, a corrupt state file),
# libcni at cniVersion 0.3.1 and 0.4.0, the pod-identity precedence of the
# README (CNI_ARGS, args.cni.labels, the state), DEL without a netns or a
# record, CHECK against the kernel, and an ADD that must not touch the kernel.
# It also validates the sample conflists of testdata/conflist and runs pods
# through one of them, so they cannot rot.
set -u
. "$(dirname "$0")/lib.sh"

NFC_DENY_TIMEOUT=${NFC_DENY_TIMEOUT:-800}
SEED=$NFC_ROOT/testdata/foo-deny-external-egress.yaml
SAMPLES=$NFC_ROOT/testdata/conflist
nfc_setup_node
STATE=$NFC_DIR/state.json
D=$NFC_DIR/direct
mkdir -p "$D"

# A CNI error: stdout is {cniVersion, code, msg}, the exit status non-zero.
#   cni_err CODE MSG_SUBSTRING DESC ENV... <CONFIG
cni_err() {
	local code=$1 pat=$2 desc=$3 out rc ok=1 why=""
	shift 3
	out=$(nfc_netfence "$@" 2>"$D/stderr")
	rc=$?
	if [ $rc = 0 ]; then
		ok=0 why="exit 0"
	elif ! jq -e 'has("cniVersion") and has("code") and has("msg")' <<<"$out" >/dev/null 2>&1; then
		ok=0 why="stdout is not a CNI error: $out"
	elif [ "$(jq -r .code <<<"$out")" != "$code" ]; then
		ok=0 why="code $(jq -r .code <<<"$out"), want $code: $(jq -r .msg <<<"$out")"
	elif ! jq -r .msg <<<"$out" | grep -qF -- "$pat"; then
		ok=0 why="msg lacks '$pat': $(jq -r .msg <<<"$out")"
	fi
	[ $ok = 1 ] && why="$(jq -r .msg <<<"$out" | head -c 120)"
	nfc__report CNIERR $ok "" "$desc -> code $code" " [$why]"
}

# A minimal prevResult of a pod that exists nowhere (no veth on the node).
prev() {
	cat <<EOF
{"cniVersion": "1.0.0",
 "interfaces": [{"name": "nfcghost0"}, {"name": "eth0", "sandbox": "/var/run/netns/ghost"}],
 "ips": [{"interface": 1, "address": "10.244.0.250/24"}]}
EOF
}
conf() { # conf STATEFILE [VERSION] [PREVRESULT-JSON]
	jq -n --arg s "$1" --arg v "${2:-1.0.0}" --argjson pr "${3:-null}" \
		'{cniVersion: $v, name: "nfc", type: "netfence", stateFile: $s}
		 + (if $pr == null then {} else {prevResult: $pr} end)'
}
ENV_ADD=(CNI_COMMAND=ADD CNI_CONTAINERID=direct1 CNI_NETNS=/var/run/netns/ghost CNI_IFNAME=eth0 CNI_PATH="$NFC_DIR/bin")

echo "== sample conflists (testdata/conflist)"
for f in "$SAMPLES"/*.conflist; do
	nfc_check "$(basename "$f"): JSON, cniVersion 1.0.0, netfence is the last plugin" \
		jq -e '.cniVersion == "1.0.0" and (.name | length > 0) and (.plugins | length >= 2)
		       and .plugins[-1].type == "netfence" and ([.plugins[] | select(.type == "netfence")] | length == 1)
		       and (.plugins[-1].stateFile | startswith("/"))' "$f"
done
nfc_check "bridge-netfence.conflist: dual-stack bridge + host-local" \
	jq -e '.plugins[0].type == "bridge" and .plugins[0].ipam.type == "host-local" and (.plugins[0].ipam.ranges | length == 2)' \
	"$SAMPLES/bridge-netfence.conflist"
nfc_check "ptp-netfence.conflist: ptp + host-local" \
	jq -e '.plugins[0].type == "ptp" and .plugins[0].ipam.type == "host-local"' "$SAMPLES/ptp-netfence.conflist"
nfc_check "bridge-netfence-labels.conflist: args.cni.labels on the netfence entry" \
	jq -e '.plugins[-1].args.cni.labels == [{"key": "app", "value": "foo"}]' "$SAMPLES/bridge-netfence-labels.conflist"

echo "== VERSION"
out=$(conf "$D/state.json" | nfc_netfence CNI_COMMAND=VERSION)
echo "$out" | jq -c .
# The README's four; 1.1.0 (GC, STATUS) may come on top of them.
nfc_check "VERSION: supportedVersions [0.3.0 0.3.1 0.4.0 1.0.0] (+ 1.1.0 at most)" \
	jq -e '.supportedVersions[0:4] == ["0.3.0","0.3.1","0.4.0","1.0.0"] and (.supportedVersions[4:] | . == [] or . == ["1.1.0"])' <<<"$out"
nfc_check "VERSION: cniVersion is the newest supported one" jq -e '.cniVersion == .supportedVersions[-1]' <<<"$out"
out=$(echo '{"cniVersion": "0.4.0"}' | nfc_netfence CNI_COMMAND=VERSION)
nfc_check "VERSION with nothing but cniVersion on stdin" jq -e '.supportedVersions | index("0.4.0") != null' <<<"$out"
out=$(nfc_netfence CNI_COMMAND=VERSION </dev/null)
nfc_check "VERSION with an empty stdin" jq -e '.supportedVersions | length >= 4' <<<"$out"

echo "== errors are CNI error JSON"
conf "$D/state.json" | cni_err 7 prevResult "ADD without prevResult" "${ENV_ADD[@]}"
conf "$D/state.json" 0.2.0 "$(prev)" | cni_err 1 0.2.0 'cniVersion "0.2.0"' "${ENV_ADD[@]}"
echo '{"cniVersion": "1.0.0", "name": ' | cni_err 6 JSON "malformed JSON on stdin" "${ENV_ADD[@]}"
conf "$D/state.json" 1.0.0 "$(prev)" | cni_err 4 CNI_CONTAINERID "missing CNI_CONTAINERID" \
	CNI_COMMAND=ADD CNI_NETNS=/var/run/netns/ghost CNI_IFNAME=eth0
conf "$D/state.json" 1.0.0 "$(prev)" | cni_err 4 'app=foo' "CNI_ARGS K8S_POD_LABELS=app=foo" \
	"${ENV_ADD[@]}" "CNI_ARGS=IgnoreUnknown=1;K8S_POD_LABELS=app=foo"
conf "$D/state.json" 1.0.0 "$(prev)" | jq -c '.stateFile = 42' | cni_err 7 stateFile "stateFile: 42" "${ENV_ADD[@]}"
conf "$D/state.json" 1.0.0 "$(prev)" | jq -c '.stateFile = "relative/state.json"' |
	cni_err 7 relative/state.json "stateFile: a relative path" "${ENV_ADD[@]}"
conf "$D/state.json" | cni_err 4 FROB "CNI_COMMAND=FROB" CNI_COMMAND=FROB CNI_CONTAINERID=x CNI_IFNAME=eth0
conf "$D/state.json" 1.0.0 "$(prev)" | cni_err 4 Bad_NS "CNI_ARGS K8S_POD_NAMESPACE=Bad_NS" \
	"${ENV_ADD[@]}" "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=Bad_NS"
conf "$D/state.json" 1.0.0 "$(prev)" | cni_err 4 CNI_NETNS "ADD without CNI_NETNS" \
	CNI_COMMAND=ADD CNI_CONTAINERID=direct1 CNI_IFNAME=eth0
conf "$D/state.json" 1.0.0 "$(prev)" | cni_err 7 eth1 "ADD with a CNI_IFNAME that prevResult lacks" \
	CNI_COMMAND=ADD CNI_CONTAINERID=direct1 CNI_NETNS=/var/run/netns/ghost CNI_IFNAME=eth1
out=$(conf "$D/state.json" 0.4.0 | nfc_netfence "${ENV_ADD[@]}")
nfc_check "an error of a 0.4.0 config is in cniVersion 0.4.0" jq -e '.cniVersion == "0.4.0"' <<<"$out"
nfc_check_not "no state file was written by the failed calls" test -e "$D/state.json"

echo "== direct ADD of a pod nothing selects: the output is the prevResult"
out=$(conf "$D/state.json" 1.0.0 "$(prev)" | nfc_netfence "${ENV_ADD[@]}" "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=ghost")
rc=$?
nfc_check "direct ADD succeeds" test $rc = 0
nfc_check "... and prints its prevResult unchanged" jq -e --argjson pr "$(prev)" '. == $pr' <<<"$out"
pr040=$(prev | jq -c '.cniVersion = "0.4.0" | .ips[0].version = "4"')
out=$(conf "$D/state.json" 0.4.0 "$pr040" | nfc_netfence "${ENV_ADD[@]}" CNI_CONTAINERID=direct2)
nfc_check "direct ADD at 0.4.0 prints the 0.4.0 prevResult" jq -e --argjson pr "$pr040" '. == $pr' <<<"$out"
nfc_check "both are recorded (state file mode 0600)" sh -c "[ \"\$(stat -c %a '$D/state.json')\" = 600 ] && jq -e '.pods | length == 2' '$D/state.json'"
for c in direct1 direct2; do
	conf "$D/state.json" | nfc_netfence CNI_COMMAND=DEL CNI_CONTAINERID=$c CNI_NETNS= CNI_IFNAME=eth0 >/dev/null
done
nfc_check "direct DELs remove both records" jq -e '.pods | length == 0' "$D/state.json"

echo "== a policy, a selected pod (foo), the external host"
nfc_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" -f "$SEED" >/dev/null 2>&1 || nfc_die "apply seed"
nfc_pod foo default app:foo || nfc_die "pod foo"
nfc_external
nfc_expect_deny foo tcp "$NFC_EXT4" 80 "external (1.0.0 conflist)"

echo "== a corrupt state file: ADD fails with 101, changes nothing"
cp "$STATE" "$D/corrupt.json"
printf '{"pods": [ this is not json\n\0\1garbage' >"$D/corrupt.json"
cp "$D/corrupt.json" "$D/corrupt.orig"
nfc_ruleset >"$D/rs.before"
conf "$D/corrupt.json" 1.0.0 "$(prev)" | cni_err 101 "$D/corrupt.json" "ADD with a corrupt state file" "${ENV_ADD[@]}" \
	"CNI_ARGS=IgnoreUnknown=1;K8S_POD_LABELS=app:foo"
nfc_check "the corrupt state file is byte-identical" cmp "$D/corrupt.orig" "$D/corrupt.json"
nfc_ruleset >"$D/rs.after"
nfc_check "the kernel ruleset is unchanged" diff -u "$D/rs.before" "$D/rs.after"
out=$(conf "$D/corrupt.json" 1.0.0 | nfc_netfence CNI_COMMAND=DEL CNI_CONTAINERID=direct1 CNI_IFNAME=eth0 CNI_NETNS= 2>"$D/del.err")
nfc_check "DEL with a corrupt state file succeeds all the same (CNI: DEL must not fail)" test $? = 0
nfc_check "... says why on stderr, naming the file" grep -qF "$D/corrupt.json" "$D/del.err"
nfc_check "... still byte-identical (kept for the operator)" cmp "$D/corrupt.orig" "$D/corrupt.json"

echo "== cnitool with conflists at cniVersion 0.3.1 and 0.4.0"
for v in 0.3.1 0.4.0; do
	dir=$NFC_DIR/net.d-$v
	mkdir -p "$dir"
	# the same network (name, subnet, host-local dir) as nfc.conflist, at another version
	jq --arg v "$v" '.cniVersion = $v' "$NFC_DIR/net.d/nfc.conflist" >"$dir/nfc.conflist"
	pod=foo${v//./}
	if nfc_pod_net "$dir" nfc "$pod" default app:foo; then
		nfc__report CHECK 1 "" "ADD through a $v conflist" ""
	else
		nfc__report CHECK 0 "" "ADD through a $v conflist" " [$(cat "$NFC_DIR/pods/$pod.result" "$NFC_DIR/pods/$pod.err" | tr '\n' ' ' | head -c 300)]"
		continue
	fi
	nfc_check "$v: the result has cniVersion $v" jq -e --arg v "$v" '.cniVersion == $v' "$NFC_DIR/pods/$pod.result"
	nfc_check "$v: the result still has the pod's addresses" jq -e '.ips | length == 2' "$NFC_DIR/pods/$pod.result"
	nfc_expect_deny "$pod" tcp "$NFC_EXT4" 80 "external ($v conflist)"
	nfc_expect_deny "$pod" tcp "$NFC_EXT6" 80 "external ($v conflist)"
	# CHECK exists from spec 0.4.0 on; libcni refuses it below
	if [ "$v" = 0.4.0 ]; then
		nfc_check "$v: CHECK succeeds" nfc_cni check "$pod"
	else
		nfc_check_not "$v: CHECK is refused (not in spec $v)" nfc_cni check "$pod"
	fi
	nfc_check "$v: DEL succeeds" nfc_pod_del "$pod"
done
# A DEL deletes kernel objects; the RCU wait of the socket's release is
# left to a child (enforce/nlsock.h), which must exit by itself.
left=""
for i in $(seq 50); do
	left=$(pgrep -f "^$NFC_ROOT/bin/netfence( |$)" | tr '\n' ' ')
	[ -z "$left" ] && break
	sleep 0.1
done
nfc_check "no netfence process lingers after the DELs (the RCU-wait child exits) [$left]" test -z "$left"

echo "== label precedence"
pod_labels() { # pod_labels K8S_NAME -> labels of the (first) pod so named, as JSON
	nfc_ctl get pods -A -o json | jq -c --arg n "$1" '[.items[] | select(.name == $n)][0].labels'
}
pod_json() { nfc_ctl get pods -A -o json | jq -c --arg n "$1" '[.items[] | select(.name == $n)]'; }
# The sample with args.cni.labels, pointed at our dirs and a bridge of its own.
LDIR=$NFC_DIR/net.d-labels
mkdir -p "$LDIR"
jq --arg s "$STATE" --arg d "$NFC_DIR/ipam" \
	'.plugins[0].bridge = "nfbr1" | .plugins[0].ipMasq = false | .plugins[0].ipam.dataDir = $d
	 | .plugins[-1].stateFile = $s' "$SAMPLES/bridge-netfence-labels.conflist" >"$LDIR/labelnet.conflist"
nfc_pod_net "$LDIR" labelnet la default "" || nfc_die "pod la"
lab=$(pod_labels la)
echo "   la (no K8S_POD_LABELS, args.cni.labels app=foo): $lab"
nfc_check "args.cni.labels: la has app=foo" jq -e '. == {"app": "foo"}' <<<"$lab"
nfc_check "la is selected (get pods lists the policy)" sh -c "ip netns exec $NFC_NODE env NETFENCE_STATE=$STATE $NFC_NETFENCECTL get pods | grep -w '^la' | grep -q foo-deny-external-egress"
nfc_expect_deny la tcp "$NFC_EXT4" 80 "external (labels from args.cni.labels)"
nfc_pod_net "$LDIR" labelnet lb default app:bar || nfc_die "pod lb"
lab=$(pod_labels lb)
echo "   lb (K8S_POD_LABELS app:bar, args.cni.labels app=foo): $lab"
nfc_check "K8S_POD_LABELS overrides args.cni.labels: lb has app=bar only" jq -e '. == {"app": "bar"}' <<<"$lab"
nfc_expect_allow lb tcp "$NFC_EXT4" 80 "external (K8S_POD_LABELS wins)"

NFC_POD_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=shared;K8S_POD_LABELS=app:foo" \
	nfc_pod sa default "" || nfc_die "pod sa"
NFC_POD_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=shared" \
	nfc_pod sb default "" || nfc_die "pod sb"
pj=$(pod_json shared)
echo "   two attachments of default/shared: $(jq -c '[.[] | .labels]' <<<"$pj")"
nfc_check "the second attachment of default/shared (no labels) inherits app=foo from the state" \
	jq -e 'length == 2 and all(.[]; .labels == {"app": "foo"})' <<<"$pj"
nfc_expect_deny sb tcp "$NFC_EXT4" 80 "external (labels inherited from the state)"
nfc_pod_del sb
nfc_pod_del sa
# args.cni.labels (2) wins over a record in the state (3)
NFC_POD_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=other;K8S_POD_LABELS=app:bar" \
	nfc_pod sx default "" || nfc_die "pod sx"
NFC_POD_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=other" \
	nfc_pod_net "$LDIR" labelnet sy default "" || nfc_die "pod sy"
pj=$(pod_json other)
echo "   default/other: app:bar by CNI_ARGS, then on labelnet without labels: $(jq -c '[.[] | .labels]' <<<"$pj")"
nfc_check "args.cni.labels (app=foo) wins over the state's record (app=bar)" \
	jq -e '(map(.labels) | sort) == [{"app": "bar"}, {"app": "foo"}]' <<<"$pj"
nfc_expect_deny sy tcp "$NFC_EXT4" 80 "external (args.cni.labels over the state)"
nfc_pod_del sy
nfc_pod_del sx

echo "== DEL"
nfc_pod d1 default app:foo || nfc_die "pod d1"
cid=$(nfc_ctl get pods -o json | jq -r '.items[] | select(.name == "d1") | .containerID')
veth=$(cat "$NFC_DIR/pods/d1.veth")
cache=$NFC_DIR/cache/results/nfc-$cid-eth0
nfc_check "d1 has a cached result" test -s "$cache"
pr=$(jq -c '.result' "$cache" 2>/dev/null)
[ -n "$pr" ] && [ "$pr" != null ] || pr=null
ENV_DEL=(CNI_COMMAND=DEL CNI_CONTAINERID="$cid" CNI_NETNS= CNI_IFNAME=eth0 CNI_PATH="$NFC_DIR/bin")
nfc_check "d1's veth is guarded" test -n "$(nfc_as_table "$veth")"
out=$(conf "$STATE" 1.0.0 "$pr" | nfc_netfence "${ENV_DEL[@]}")
rc=$?
nfc_check "DEL with an empty CNI_NETNS and the cached prevResult succeeds [$out]" test $rc = 0
nfc_check_not "... and removes d1's record" sh -c "ip netns exec $NFC_NODE env NETFENCE_STATE=$STATE $NFC_NETFENCECTL get pods | grep -qw '^d1'"
nfc_check_not "... and d1's rules" sh -c "ip netns exec $NFC_NODE nft list ruleset | grep -qF '\"$veth\"'"
out=$(conf "$STATE" | nfc_netfence "${ENV_DEL[@]}")
nfc_check "a second DEL (no prevResult) succeeds [$out]" test $? = 0
cp "$STATE" "$D/state.before"
nfc_ruleset >"$D/rs.before"
out=$(conf "$STATE" | nfc_netfence CNI_COMMAND=DEL CNI_CONTAINERID=never-seen-0123 CNI_NETNS= CNI_IFNAME=eth0)
nfc_check "DEL of a container never seen succeeds [$out]" test $? = 0
nfc_check "... the state file is byte-identical" cmp "$D/state.before" "$STATE"
nfc_ruleset >"$D/rs.after"
nfc_check "... the kernel ruleset is identical" diff -u "$D/rs.before" "$D/rs.after"
out=$(conf "$D/absent/state.json" | nfc_netfence CNI_COMMAND=DEL CNI_CONTAINERID=never-seen-0123 CNI_NETNS= CNI_IFNAME=eth0)
nfc_check "DEL with no state file at all succeeds [$out]" test $? = 0
nfc_pod_del d1

echo "== CHECK"
nfc_check "CHECK of the selected pod foo succeeds" nfc_cni check foo
nfc_in node nft delete table inet netfence
out=$(nfc_cni check foo 2>&1)
rc=$?
echo "   $(tr '\n' ' ' <<<"$out" | head -c 200)"
nfc_check "CHECK fails once table inet netfence is gone" test $rc != 0
nfc_check "... saying what is missing" grep -q "table inet netfence is missing" <<<"$out"
# an ADD of a second pod like foo sends only its own share (plan_pod_delta);
# the kernel refuses it without the tables, so the ADD programs it all
nfc_check "ADD of a pod like foo with the tables gone succeeds" nfc_pod d2 default app:foo
nfc_check "... and the kernel holds what the state says again" nfc_kernel_matches_plan
nfc_check "... CHECK of foo succeeds without a sync" nfc_cni check foo
nfc_pod_del d2
nfc_in node nft delete table inet netfence
nfc_check "netfencectl sync" nfc_ctl sync
nfc_check "CHECK succeeds again after sync" nfc_cni check foo
nfc_expect_deny foo tcp "$NFC_EXT4" 80 "external (after sync)"
# someone alters foo's rules: CHECK must notice each kind of change
foo_chain=$(nfc_kind_chain foo)
tamper() { # DESC WANT nft-command...
	local desc=$1 want=$2
	shift 2
	nfc_in node nft "$@"
	out=$(nfc_cni check foo 2>&1)
	nfc_check "CHECK notices: $desc" test $? != 0
	nfc_check "... and says so ($want)" grep -qF "$want" <<<"$out"
	nfc_ctl sync >/dev/null
	nfc_check "... sync restores it" nfc_cni check foo
}
tamper "an accept inserted in foo's chain" "is not in the plan" insert rule inet netfence "$foo_chain" accept
tamper "foo's chain flushed" "of the plan is missing" flush chain inet netfence "$foo_chain"
tamper "a peer added to the kube-dns set" "is not in the plan" \
	add element inet netfence "$(nfc_in node nft list table inet netfence | grep -o 'set sel_[0-9a-f]*_4' | head -1 | cut -d' ' -f2)" "{ 203.0.113.80 }"
foo_veth=$(cat "$NFC_DIR/pods/foo.veth")
tamper "foo's anti-spoofing chain flushed" "as_" flush chain netdev "$(nfc_as_table "$foo_veth")" "as_$foo_veth"
out=$(conf "$STATE" 1.0.0 "$(prev)" | nfc_netfence CNI_COMMAND=CHECK CNI_CONTAINERID=never-seen-0123 CNI_NETNS=/var/run/netns/ghost CNI_IFNAME=eth0)
nfc_check "CHECK of a container never ADDed fails with code 3" jq -e '.code == 3' <<<"$out"

echo "== ADD of a pod nothing selects or matches leaves the kernel alone"
nfc_ruleset >"$D/rs.before"
nfc__nsexec "$NFC_NODE" timeout 20 nft monitor >"$D/monitor.out" 2>&1 &
mon=$!
sleep 0.5
nfc_pod plain default app:bar || nfc_die "pod plain"
sleep 0.3
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
nfc_ruleset >"$D/rs.after"
nfc_check "the ruleset (with handles) is identical" diff -u "$D/rs.before" "$D/rs.after"
nfc_check "nft monitor saw no change during the ADD" test ! -s "$D/monitor.out"
# the monitor does see a change: netfencectl sync re-programs the tables
nfc__nsexec "$NFC_NODE" timeout 20 nft monitor >"$D/monitor2.out" 2>&1 &
mon=$!
sleep 0.5
nfc_ctl sync
sleep 0.3
kill "$mon" 2>/dev/null
wait "$mon" 2>/dev/null
nfc_check "(control: the same nft monitor sees netfencectl sync)" grep -q "netfence" "$D/monitor2.out"
nfc_check "plain is recorded all the same" sh -c "ip netns exec $NFC_NODE env NETFENCE_STATE=$STATE $NFC_NETFENCECTL get pods | grep -qw '^plain'"
nfc_expect_allow plain tcp "$NFC_EXT4" 80 "external (not selected)"
nfc_ruleset >"$D/rs.before"
nfc_pod_del plain
nfc_ruleset >"$D/rs.after"
nfc_check "its DEL leaves the kernel alone too" diff -u "$D/rs.before" "$D/rs.after"

echo "== the model cache follows the state file, also when it is edited by hand"
nfc_check "the model cache is next to the state" test -s "$STATE.model"
cp "$STATE" "$D/state.unedited"
# DNS on 5353 instead of 53, written in place (same file, same mode)
jq -c '(.networkPolicies[] | select(.metadata.name == "foo-deny-external-egress") | .spec.egress[0].ports[].port) |= 5353' \
	"$D/state.unedited" >"$D/state.edited" && cat "$D/state.edited" >"$STATE"
# and a second policy for pods with e=one: e1 below is selected by both, a
# new kind, whose chain the ADD compiles and sends
jq -c '.networkPolicies += [{apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy",
	metadata: {name: "e-one", namespace: "default"},
	spec: {podSelector: {matchLabels: {e: "one"}}, policyTypes: ["Egress"], egress: [{ports: [{port: 7}]}]}}]' \
	"$D/state.edited" >"$D/state.edited2" && cat "$D/state.edited2" >"$STATE"
nfc_check "ADD of a pod of a new kind (foo's policy and e-one), after the edit" nfc_pod e1 default app:foo,e:one
e1_chain=$(nfc_kind_chain e1)
nfc_check "... its own chain [$e1_chain], not foo's [$foo_chain]" test -n "$e1_chain" -a "$e1_chain" != "$foo_chain"
nfc_check "its chain has the edited port (the cache of the old text was not used) [$e1_chain]" \
	sh -c "ip netns exec $NFC_NODE nft list chain inet netfence '$e1_chain' | grep -q 'dport 5353'"
nfc_check_not "... and not the old one" \
	sh -c "ip netns exec $NFC_NODE nft list chain inet netfence '$e1_chain' | grep -q 'dport 53 '"
nfc_pod_del e1
cat "$D/state.unedited" >"$STATE"
nfc_check "netfencectl sync after putting the text back" nfc_ctl sync

echo "== the state becomes corrupt while foo runs: ADD fails closed, DEL still removes foo's rules"
foo_veth=$(cat "$NFC_DIR/pods/foo.veth")
foo_ip4=$(nfc_ip foo 4)
nfc_check "foo's veth is guarded" sh -c "ip netns exec $NFC_NODE nft list ruleset | grep -qF '\"$foo_veth\"'"
# two pods of a kind of their own: selected by foo's policy and by one
# for t=two
cat >"$D/t-two.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: t-two, namespace: default}
spec:
  podSelector: {matchLabels: {t: two}}
  policyTypes: [Egress]
  egress: [{ports: [{port: 7}]}]
YAML
nfc_check "a policy for the pods with t=two" nfc_ctl apply -f "$D/t-two.yaml"
nfc_check "f2, a pod of a kind of its own, attached" nfc_pod f2 default app:foo,t:two
nfc_check "f3, of the same kind, attached" nfc_pod f3 default app:foo,t:two
f2_ip4=$(nfc_ip f2 4)
f3_ip4=$(nfc_ip f3 4)
two_chain=$(nfc_kind_chain f2)
nfc_check "... one chain for both [$two_chain], not foo's" \
	test -n "$two_chain" -a "$two_chain" = "$(nfc_kind_chain f3)" -a "$two_chain" != "$(nfc_kind_chain foo)"
cp "$STATE" "$D/state.good"
printf '{"pods": [ truncated' >"$STATE"
nfc_check_not "ADD of another pod fails closed" nfc_pod late default app:foo
rm -f "$NFC_DIR/pods/late.attached"
nfc_check "DEL of foo succeeds" nfc_cni del foo
rm -f "$NFC_DIR/pods/foo.attached"
rs=$(nfc_ruleset)
nfc_check_not "no trace of foo's veth" grep -qF "$foo_veth" <<<"$rs"
nfc_check_not "no trace of foo's address" grep -qwF "$foo_ip4" <<<"$rs"
nfc_check "DEL of f2 succeeds too" nfc_cni del f2
rm -f "$NFC_DIR/pods/f2.attached"
nfc_check "f3 still jumps to the chain of their kind, which stays [$two_chain]" \
	sh -c "ip netns exec $NFC_NODE nft list map inet netfence egress4 | grep -qF '$f3_ip4 : jump $two_chain'"
nfc_check_not "... f2's entry is gone" grep -qwF "$f2_ip4" <<<"$(nfc_ruleset)"
nfc_check "DEL of f3 succeeds" nfc_cni del f3
rm -f "$NFC_DIR/pods/f3.attached"
rs=$(nfc_ruleset)
nfc_check_not "... and the chain of the kind goes with its last pod" grep -qF "$two_chain" <<<"$rs"
nfc_check_not "... no trace of f3's address" grep -qwF "$f3_ip4" <<<"$rs"
nfc_check "the corrupt state file is left for the operator" grep -q truncated "$STATE"
cp "$D/state.good" "$STATE"
chmod 600 "$STATE"

nfc_summary
