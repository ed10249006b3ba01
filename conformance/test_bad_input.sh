#!/bin/bash
# A catalog of bad input, through the real binaries: network configs,
# prevResults and CNI_ARGS to the plugin's ADD, manifests to netfencectl
# apply, and state files to both. Each case must fail with a clear error
# (the expected words, and for the plugin a CNI error JSON with its code)
# and change nothing: the state file and the kernel ruleset stay identical.
# Cases cover truncated input, wrong types, huge input, deep nesting,
# non-UTF-8, NUL bytes and overlong names.
set -u
. "$(dirname "$0")/lib.sh"

NFC_PLUGIN_NETFENCE=1
nfc_setup_node
STATE=$NFC_DIR/state.json
B=$NFC_DIR/bad
mkdir -p "$B"
nfc_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" -f "$NFC_ROOT/testdata/foo-deny-external-egress.yaml" >/dev/null 2>&1
nfc_pod foo default app:foo || nfc_die "pod foo"
PREV=$(jq -c . "$NFC_DIR/pods/foo.result") # what ADD printed is the next plugin's prevResult
[ -n "$PREV" ] && [ "$PREV" != null ] || nfc_die "no prevResult from foo's ADD"
snapshot() { cp "$STATE" "$B/state.snap"; nfc_ruleset >"$B/rs.snap"; }
unchanged() {
	cmp -s "$STATE" "$B/state.snap" && nfc_ruleset | cmp -s - "$B/rs.snap"
}
long() { head -c "$1" /dev/zero | tr '\0' "${2:-a}"; }

# plugin ADD: case DESC CODE WORDS CNI_ARGS <config
add_case() {
	local desc=$1 code=$2 words=$3 args=$4 out ok=1 why
	snapshot
	out=$(nfc_netfence CNI_COMMAND=ADD CNI_CONTAINERID=bad-1 CNI_NETNS=/var/run/netns/none CNI_IFNAME=eth0 \
		CNI_PATH="$NFC_DIR/bin" "CNI_ARGS=$args" 2>/dev/null)
	local rc=$?
	why=$(jq -r '"code \(.code): \(.msg)"' <<<"$out" 2>/dev/null | head -c 160)
	if [ $rc = 0 ]; then ok=0 why="exit 0"; fi
	[ "$(jq -r .code <<<"$out" 2>/dev/null)" = "$code" ] || ok=0
	jq -r .msg <<<"$out" 2>/dev/null | grep -qiF -- "$words" || ok=0
	unchanged || { ok=0 why="$why; CHANGED state or ruleset"; }
	nfc__report ADD $ok "" "$desc -> $code \"$words\"" " [$why]"
}
# netfencectl: case DESC WORDS ARGS... (stdin may be a manifest)
ctl_case() {
	local desc=$1 words=$2 out ok=1
	shift 2
	snapshot
	out=$(nfc_ctl "$@" 2>&1)
	local rc=$?
	[ $rc != 0 ] || ok=0
	grep -qiF -- "$words" <<<"$out" || ok=0
	unchanged || { ok=0 out="$out; CHANGED state or ruleset"; }
	nfc__report CTL $ok "" "$desc -> \"$words\"" " [$(tr '\n' ' ' <<<"$out" | head -c 160)]"
}
conf() { jq -nc --arg s "$STATE" --argjson pr "$PREV" '{cniVersion:"1.0.0",name:"nfc",type:"netfence",stateFile:$s,prevResult:$pr}'; }
A="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bad"

echo "== network configs"
conf | head -c 60 | add_case "truncated config" 6 "invalid JSON" "$A"
conf | jq -c '.cniVersion = ["1.0.0"]' | add_case "cniVersion of the wrong type" 7 "cniVersion" "$A"
conf | jq -c '.stateFile = {"path": 1}' | add_case "stateFile of the wrong type" 7 "stateFile" "$A"
conf | jq -c '.args = {"cni": {"labels": "app=foo"}}' | add_case "args.cni.labels of the wrong type" 7 "args.cni.labels" "$A"
{ printf '{"cniVersion":"1.0.0","pad":"'; long $((17 << 20)); printf '"}'; } | add_case "a 17 MiB config" 5 "16 MiB" "$A"
{ printf '{"cniVersion":"1.0.0","x":'; long 5000 '['; long 5000 ']'; printf '}'; } | add_case "5000-deep nesting" 6 "depth" "$A"
printf '{"cniVersion":"1.0.0","name":"n\xff\xfe"}' | add_case "non-UTF-8 in a string" 6 "not valid UTF-8" "$A"
printf '{"cniVersion":"1.0.0","name":"a\\u0000b","x":1}\0{}' | add_case "a NUL byte" 6 "invalid JSON" "$A"
conf | jq -c --arg p "/tmp/$(long 5000)" '.stateFile = $p' | add_case "an overlong stateFile path" 7 "stateFile" "$A"
echo "== prevResults"
conf | jq -c '.idleKindChains = -1' | add_case "a negative idleKindChains" 7 "idleKindChains: must be a whole number from 0 to 1024, got -1" "$A"
conf | jq -c '.idleKindChains = "8"' | add_case "idleKindChains as a string" 7 'idleKindChains: must be a whole number from 0 to 1024, got "8"' "$A"
conf | jq -c '.idleKindChains = 1025' | add_case "idleKindChains above 1024" 7 "got 1025" "$A"
conf | jq -c '.idleKindChains = 2.5' | add_case "a fractional idleKindChains" 7 "idleKindChains: must be a whole number from 0 to 1024, got 2.5" "$A"
conf | jq -c 'del(.prevResult)' | add_case "no prevResult" 7 "prevResult" "$A"
conf | jq -c '.prevResult.interfaces = "eth0"' | add_case "interfaces of the wrong type" 7 "prevResult.interfaces" "$A"
conf | jq -c '.prevResult.ips[0].address = "10.244.0.300/24"' | add_case "a bad address" 7 "10.244.0.300/24" "$A"
conf | jq -c '.prevResult.ips[0].interface = "2"' | add_case "ips[].interface as a string" 7 "prevResult.ips[0].interface" "$A"
conf | jq -c '.prevResult.ips = []' | add_case "no address for the pod" 7 "no address" "$A"
echo "== CNI_ARGS"
conf | add_case "labels with =" 4 "app=foo" "$A;K8S_POD_LABELS=app=foo"
conf | add_case "an overlong pod name" 4 "K8S_POD_NAME" "IgnoreUnknown=1;K8S_POD_NAME=$(long 300)"
conf | add_case "a 64-character label value" 4 "$(long 64 b)" "$A;K8S_POD_LABELS=app:$(long 64 b)"
conf | add_case "a non-UTF-8 label value" 4 "K8S_POD_LABELS" "$A;K8S_POD_LABELS=app:$(printf 'x\xff')"
conf | add_case "a pair without =" 4 "invalid pair" "IgnoreUnknown;K8S_POD_NAME=x"

echo "== manifests (netfencectl apply -f -)"
m() { cat "$NFC_ROOT/testdata/foo-deny-external-egress-incluster.yaml"; }
printf 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, labels: {a: b' |
	ctl_case "truncated YAML" "invalid YAML" apply -f -
J='{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"j"},"spec":'
echo "$J"'{"egress":"none"}}' | ctl_case "spec.egress of the wrong type" "spec.egress" apply -f -
echo "$J"'{"egress":[{"ports":53}]}}' | ctl_case "ports of the wrong type" "spec.egress[0].ports" apply -f -
echo "$J"'{"podSelector":{"matchLabels":{"app":7}}}}' | ctl_case "a label value of the wrong type" "app" apply -f -
{ m; echo "  # $(long $((17 << 20)))"; } | ctl_case "a 17 MiB manifest" "16 MiB" apply -f -
{ echo "a:"; for i in $(seq 300); do printf '%*s- \n' $((i * 2)) ''; done; } | ctl_case "300-deep YAML nesting" "nest" apply -f -
m | sed "s/name: foo-deny-external-egress/name: foo\xff/" | ctl_case "non-UTF-8" "UTF-8" apply -f -
{ m | head -3; printf 'x: "a\0b"\n'; } | ctl_case "a NUL byte" "NUL" apply -f -
m | sed "s/name: foo-deny-external-egress/name: $(long 300)/" | ctl_case "an overlong name" "metadata.name" apply -f -
printf '{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"j"},"spec":{"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.0/33"}}]}]}' |
	ctl_case "truncated JSON" "invalid JSON" apply -f -

echo "== state files"
good=$B/state.good
cp "$STATE" "$good"
state_case() { # DESC WORDS <content
	local desc=$1 words=$2
	cat >"$STATE"
	chmod 600 "$STATE"
	conf | add_case "ADD, state: $desc" 101 "$words" "$A"
	ctl_case "get, state: $desc" "$words" get pods
	ctl_case "apply, state: $desc" "$words" apply -f "$NFC_ROOT/testdata/namespaces.yaml"
	cp "$good" "$STATE"
}
head -c 100 "$good" | state_case "truncated" "corrupt"
jq -c '.pods = {"foo": 1}' "$good" | state_case "pods of the wrong type" "pods"
jq -c '.pods[0].ips = [7]' "$good" | state_case "a pod address of the wrong type" "pods[0]"
{ printf '{"pods":'; long 5000 '['; long 5000 ']'; printf '}'; } | state_case "5000-deep nesting" "depth"
printf '{"pods": [{"containerID": "c\xff", "ifname": "eth0"}]}' | state_case "non-UTF-8" "not valid UTF-8"
{ printf '{"pods": []}\0garbage'; } | state_case "a NUL byte" "corrupt"
jq -c --arg n "$(long 300)" '.pods[0].name = $n' "$good" | state_case "an overlong pod name" "pods[0]"
nfc_summary
