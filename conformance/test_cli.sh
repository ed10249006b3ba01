#!/bin/bash
# shellcheck disable=SC2016 # jq programs use $vars in single quotes
# netfencectl in kubectl's wording (README "netfencectl"): apply of JSON,
# multi-document YAML, kind List (YAML and JSON) and stdin, with kubectl's
# created / unchanged / configured lines; -n; get; delete and NotFound;
# invalid manifests that must change nothing (state file and kernel); a
# change that re-programs running pods at once; install.sh into temp dirs.
set -u
. "$(dirname "$0")/lib.sh"

NFC_DENY_TIMEOUT=${NFC_DENY_TIMEOUT:-800}
NP=networkpolicy.networking.k8s.io
nfc_setup_node
STATE=$NFC_DIR/state.json
M=$NFC_DIR/manifests
mkdir -p "$M"

# ctl_out OUTFILE ARGS... : netfencectl's stdout to OUTFILE, stderr to OUTFILE.err; its status
ctl_out() {
	local f=$1
	shift
	nfc_ctl "$@" >"$f" 2>"$f.err"
}
# expect_lines DESC FILE LINE... : FILE holds exactly these lines
expect_lines() {
	local desc=$1 f=$2
	shift 2
	printf '%s\n' "$@" >"$f.want"
	if diff -u "$f.want" "$f" >"$f.diff" 2>&1; then
		nfc__report CHECK 1 "" "$desc" ""
	else
		nfc__report CHECK 0 "" "$desc" " [got: $(tr '\n' '|' <"$f") stderr: $(tr '\n' '|' <"$f.err" | head -c 200)]"
	fi
}

echo "== pods: foo (default, app=foo), tfoo (team, app=foo), bar (default, app=bar); external"
nfc_pod foo default app:foo || nfc_die "pod foo"
nfc_pod tfoo team app:foo || nfc_die "pod tfoo"
nfc_pod bar default app:bar || nfc_die "pod bar"
nfc_serve bar tcp 8080
nfc_external
nfc_expect_allow foo tcp "$NFC_EXT4" 80 "external (no policy yet)"

echo "== apply: a JSON file; a change reaches the running pod at once"
cat >"$M/json-pol.json" <<'EOF'
{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "json-pol", "namespace": "default"},
 "spec": {"podSelector": {"matchLabels": {"app": "foo"}}, "policyTypes": ["Egress"],
          "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443}]}]}}
EOF
ctl_out "$M/o1" apply -f "$M/json-pol.json"
expect_lines "apply JSON: created" "$M/o1" "$NP/json-pol created"
nfc_expect_deny foo tcp "$NFC_EXT4" 80 "external, right after apply"
nfc_expect_allow bar tcp "$NFC_EXT4" 80 "external (bar is not selected)"
ctl_out "$M/o2" apply -f "$M/json-pol.json"
expect_lines "re-apply JSON: unchanged" "$M/o2" "$NP/json-pol unchanged"
jq '.spec.egress[0].to[0].ipBlock.cidr = "203.0.113.0/24" | .spec.egress[0].ports[0].port = 80' \
	"$M/json-pol.json" >"$M/json-pol2.json"
ctl_out "$M/o3" apply -f "$M/json-pol2.json"
expect_lines "apply changed JSON: configured" "$M/o3" "$NP/json-pol configured"
nfc_expect_allow foo tcp "$NFC_EXT4" 80 "external 80, now allowed by the configured policy"
nfc_expect_deny foo udp "$NFC_EXT4" 53 "external 53/udp, still denied"

echo "== apply: multi-document YAML with a Namespace"
cat >"$M/multi.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: team
  labels:
    tier: backend
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: yaml-pol
  namespace: team
spec:
  podSelector:
    matchLabels:
      app: foo
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {}
---
# a comment-only document and an empty one are fine
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: yaml-pol-2
spec:
  podSelector:
    matchExpressions:
    - {key: app, operator: In, values: [nothing-has-this]}
  egress: []
EOF
ctl_out "$M/o4" apply -f "$M/multi.yaml"
expect_lines "apply multi-doc YAML: namespace + 2 policies created" "$M/o4" \
	"namespace/team created" "$NP/yaml-pol created" "$NP/yaml-pol-2 created"
nfc_expect_deny tfoo tcp "$NFC_EXT4" 80 "external (yaml-pol selects tfoo in team)"
nfc_expect_allow tfoo tcp "$(nfc_ip bar 4)" 8080 "bar pod (in-cluster allowed)"
ctl_out "$M/o5" apply -f "$M/multi.yaml"
expect_lines "re-apply multi-doc YAML: all unchanged" "$M/o5" \
	"namespace/team unchanged" "$NP/yaml-pol unchanged" "$NP/yaml-pol-2 unchanged"
sed 's/tier: backend/tier: frontend/' "$M/multi.yaml" >"$M/multi2.yaml"
ctl_out "$M/o6" apply -f "$M/multi2.yaml"
expect_lines "apply with a changed namespace label: namespace configured" "$M/o6" \
	"namespace/team configured" "$NP/yaml-pol unchanged" "$NP/yaml-pol-2 unchanged"

echo "== apply: kind List, YAML and JSON"
cat >"$M/list.yaml" <<'EOF'
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: listns
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: list-pol-y
    namespace: listns
  spec:
    podSelector: {}
    policyTypes: [Egress]
    egress: [{}]
EOF
ctl_out "$M/o7" apply -f "$M/list.yaml"
expect_lines "apply List (YAML): created" "$M/o7" "namespace/listns created" "$NP/list-pol-y created"
ctl_out "$M/o8" apply -f "$M/list.yaml"
expect_lines "re-apply List (YAML): unchanged" "$M/o8" "namespace/listns unchanged" "$NP/list-pol-y unchanged"
cat >"$M/list.json" <<'EOF'
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
   "metadata": {"name": "list-pol-j", "namespace": "listns"},
   "spec": {"podSelector": {"matchLabels": {"x": "y"}}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}}]}
EOF
ctl_out "$M/o9" apply -f "$M/list.json"
expect_lines "apply List (JSON): created" "$M/o9" "$NP/list-pol-j created"
ctl_out "$M/o10" apply -f "$M/list.json"
expect_lines "re-apply List (JSON): unchanged" "$M/o10" "$NP/list-pol-j unchanged"
jq '.items[0].spec.egress[0].ports[0].port = 5353' "$M/list.json" >"$M/list2.json"
ctl_out "$M/o11" apply -f "$M/list2.json"
expect_lines "apply changed List (JSON): configured" "$M/o11" "$NP/list-pol-j configured"

echo "== apply -f - (stdin), and -n NS"
cat >"$M/nons.yaml" <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: stdin-pol
spec:
  podSelector:
    matchLabels: {app: nothing}
  egress: []
EOF
nfc__nsexec "$NFC_NODE" env NETFENCE_STATE="$STATE" "$NFC_NETFENCECTL" apply -f - -n team <"$M/nons.yaml" >"$M/o12" 2>"$M/o12.err"
expect_lines "apply -f - -n team: created" "$M/o12" "$NP/stdin-pol created"
nfc__nsexec "$NFC_NODE" env NETFENCE_STATE="$STATE" "$NFC_NETFENCECTL" apply -f - -n team <"$M/nons.yaml" >"$M/o13" 2>"$M/o13.err"
expect_lines "apply -f - -n team again: unchanged" "$M/o13" "$NP/stdin-pol unchanged"
sed 's/app: nothing/app: nobody/' "$M/nons.yaml" | nfc__nsexec "$NFC_NODE" env NETFENCE_STATE="$STATE" \
	"$NFC_NETFENCECTL" apply -n team -f - >"$M/o14" 2>"$M/o14.err"
expect_lines "apply -f - changed: configured" "$M/o14" "$NP/stdin-pol configured"
ctl_out "$M/o15" get networkpolicies -n team
nfc_check "get networkpolicies -n team lists stdin-pol (no metadata.namespace -> -n)" grep -qw '^stdin-pol' "$M/o15"
ctl_out "$M/o16" get networkpolicies
nfc_check_not "get networkpolicies (default) does not" grep -qw 'stdin-pol' "$M/o16"
nfc_check "get networkpolicies (default) lists json-pol" grep -qw '^json-pol' "$M/o16"
ctl_out "$M/o17" get netpol -A
nfc_check "get netpol -A: NAMESPACE column" grep -q '^NAMESPACE' "$M/o17"
for p in "default json-pol" "team yaml-pol" "default yaml-pol-2" "listns list-pol-y" "listns list-pol-j" "team stdin-pol"; do
	nfc_check "get netpol -A lists $p" grep -qE "^${p% *} +${p#* } " "$M/o17"
done
ctl_out "$M/o18" get netpol -A -o json
nfc_check "get netpol -A -o json: a List of 6 NetworkPolicies" \
	jq -e '.kind == "List" and (.items | length == 6) and all(.items[]; .kind == "NetworkPolicy")' "$M/o18"
nfc_check "-o json: stdin-pol has metadata.namespace team" \
	jq -e '[.items[] | select(.metadata.name == "stdin-pol")][0].metadata.namespace == "team"' "$M/o18"
ctl_out "$M/o19" get namespaces
nfc_check "get namespaces lists team and listns" sh -c "grep -qw '^team' '$M/o19' && grep -qw '^listns' '$M/o19'"
ctl_out "$M/o20" get namespaces -o json
nfc_check "get namespaces -o json: team carries tier=frontend" \
	jq -e '[.items[] | select(.metadata.name == "team")][0].metadata.labels.tier == "frontend"' "$M/o20"
# README: every namespace carries kubernetes.io/metadata.name=<name>, and the
# objects are kept "as the API serves them" (the API server adds this label)
nfc_check "get namespaces -o json: team carries kubernetes.io/metadata.name=team, as the API serves it" \
	jq -e '[.items[] | select(.metadata.name == "team")][0].metadata.labels["kubernetes.io/metadata.name"] == "team"' "$M/o20"
nfc_check "get namespaces (table) shows kubernetes.io/metadata.name=team" grep -qE '^team .*kubernetes.io/metadata.name=team' "$M/o19"
ctl_out "$M/o21" get pods -A
nfc_check "get pods -A lists foo, tfoo, bar" sh -c "grep -qE '^default +foo ' '$M/o21' && grep -qE '^team +tfoo ' '$M/o21' && grep -qE '^default +bar ' '$M/o21'"
nfc_check "get pods -A: foo's egress policy is json-pol" grep -qE '^default +foo .*json-pol' "$M/o21"
ctl_out "$M/o22" get pods -A -o json
nfc_check "get pods -A -o json: 3 pods with their addresses" \
	jq -e --arg ip "$(nfc_ip foo 4)" '(.items | length == 3) and ([.items[] | select(.name == "foo")][0].ips | map(startswith($ip)) | any)' "$M/o22"
ctl_out "$M/o23" get pods -n team
nfc_check "get pods -n team: tfoo only" sh -c "grep -qw tfoo '$M/o23' && ! grep -qw bar '$M/o23'"

echo "== invalid manifests change nothing"
bad() { # bad NAME DESC PATTERN... <MANIFEST
	local desc=$2 f=$M/bad-$1.yaml rc pat ok=1 why=""
	shift 2
	cat >"$f"
	cp "$STATE" "$M/state.before"
	nfc_ruleset >"$M/rs.before"
	nfc_ctl apply -f "$f" >"$M/bad.out" 2>"$M/bad.err"
	rc=$?
	if [ $rc = 0 ]; then
		ok=0 why="exit 0"
	else
		for pat in "$@"; do
			grep -qF -- "$pat" "$M/bad.err" || { ok=0 why="stderr lacks '$pat'"; }
		done
	fi
	[ -s "$M/bad.out" ] && { ok=0 why="$why; printed on stdout: $(tr '\n' '|' <"$M/bad.out")"; }
	[ $ok = 1 ] && why=$(tr '\n' ' ' <"$M/bad.err" | head -c 160)
	[ $ok = 1 ] || why="$why: $(tr '\n' ' ' <"$M/bad.err" | head -c 200)"
	nfc__report CHECK $ok "" "invalid: $desc: exit $rc, message names $*" " [$why]"
	nfc_check "  ... state file byte-identical" cmp "$M/state.before" "$STATE"
	nfc_ruleset >"$M/rs.after"
	nfc_check "  ... kernel ruleset identical" diff -u "$M/rs.before" "$M/rs.after"
}
bad cidr "bad CIDR" cidr 10.0.0.0/33 <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad-cidr}
spec:
  podSelector: {matchLabels: {app: foo}}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/33}}]
EOF
bad op "bad selector operator" operator Has <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad-op}
spec:
  podSelector:
    matchExpressions: [{key: app, operator: Has, values: [foo]}]
  egress: [{}]
EOF
bad proto "unknown protocol" protocol ICMP <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad-proto}
spec:
  podSelector: {matchLabels: {app: foo}}
  egress:
  - ports: [{port: 80, protocol: ICMP}]
EOF
bad except "except outside cidr" except 192.168.0.0/16 <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad-except}
spec:
  podSelector: {matchLabels: {app: foo}}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]
EOF
bad mixed "a valid object, then an invalid one" cidr 300.1.2.3/8 <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: would-be-valid}
spec:
  podSelector: {matchLabels: {app: bar}}
  egress: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad-second}
spec:
  podSelector: {matchLabels: {app: foo}}
  egress:
  - to: [{ipBlock: {cidr: 300.1.2.3/8}}]
EOF
echo "-- kubectl's refusals"
cat >"$M/alpha.yaml" <<'EOF2'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ns-mismatch, namespace: alpha}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: []
EOF2
cp "$STATE" "$M/state.before"
ctl_out "$M/o30" apply -n beta -f "$M/alpha.yaml"
rc=$?
# kubectl: error: the namespace from the provided object "alpha" does not match
# the namespace "beta". You must pass '--namespace=alpha' to perform this operation.
nfc_check "apply -n beta of an object in namespace alpha is refused, as kubectl does [exit $rc: $(cat "$M/o30" "$M/o30.err" | tr '\n' ' ')]" test $rc != 0
nfc_check "... and changes nothing" cmp "$M/state.before" "$STATE"
nfc_ctl delete networkpolicy ns-mismatch -n alpha >/dev/null 2>&1
: >"$M/empty.yaml"
cp "$STATE" "$M/state.before"
ctl_out "$M/o31" apply -f "$M/empty.yaml"
rc=$?
# kubectl: error: no objects passed to apply
nfc_check "apply of an empty file fails like kubectl's 'no objects passed to apply' [exit $rc: $(tr '\n' ' ' <"$M/o31.err")]" test $rc != 0
nfc_check "... and changes nothing" cmp "$M/state.before" "$STATE"
ctl_out "$M/o32" apply -f "$M/does-not-exist.yaml"
rc=$?
nfc_check "apply of a missing file fails naming it [$(cat "$M/o32.err")]" sh -c "[ $rc != 0 ] && grep -q does-not-exist.yaml '$M/o32.err'"
ctl_out "$M/o33" get netpol -n nothing-here
nfc_check "get netpol -n nothing-here: 'No resources found in nothing-here namespace.' on stderr" \
	grep -qx 'No resources found in nothing-here namespace.' "$M/o33.err"
nfc_check "... and, as kubectl, nothing on stdout (no header) [$(head -1 "$M/o33")]" test ! -s "$M/o33"

ctl_out "$M/o24" get netpol -A
nfc_check_not "the valid object of that file was not applied" grep -qw would-be-valid "$M/o24"
nfc_expect_allow bar tcp "$NFC_EXT4" 80 "external (bar still unrestricted)"

echo "== delete"
ctl_out "$M/o25" delete networkpolicy json-pol -n default
expect_lines "delete networkpolicy json-pol -n default" "$M/o25" "$NP \"json-pol\" deleted"
nfc_expect_allow foo tcp "$NFC_EXT4" 80 "external, right after delete"
nfc_expect_allow foo udp "$NFC_EXT4" 53 "external, right after delete"
ctl_out "$M/o26" delete networkpolicy yaml-pol -n team
expect_lines "delete networkpolicy yaml-pol -n team" "$M/o26" "$NP \"yaml-pol\" deleted"
nfc_expect_allow tfoo tcp "$NFC_EXT4" 80 "external, right after delete"
cp "$STATE" "$M/state.before"
ctl_out "$M/o27" delete networkpolicy nope -n team
rc=$?
nfc_check "delete of a missing policy exits 1" test $rc = 1
nfc_check "... with Error from server (NotFound) on stderr" grep -q '^Error from server (NotFound): .*"nope" not found' "$M/o27.err"
nfc_check "... and nothing on stdout" test ! -s "$M/o27"
nfc_check "... state byte-identical" cmp "$M/state.before" "$STATE"
ctl_out "$M/o28" delete -f "$M/list.yaml"
expect_lines "delete -f list.yaml" "$M/o28" "namespace \"listns\" deleted" "$NP \"list-pol-y\" deleted"

echo "== install.sh into temp dirs"
I=$NFC_DIR/inst
mkdir -p "$I"
jq '.plugins |= map(select(.type != "netfence"))' "$NFC_DIR/net.d/nfc.conflist" >"$I/x.conflist"
inst() { env -u NETFENCE_STATE "$NFC_ROOT/install.sh" "$@"; }
nfc_check "install.sh --cni-bin-dir --prefix --conflist" inst --cni-bin-dir "$I/cni" --prefix "$I" --conflist "$I/x.conflist"
nfc_check "the plugin is installed, executable, the same binary" cmp "$NFC_ROOT/bin/netfence" "$I/cni/netfence"
nfc_check "netfencectl is installed under PREFIX/bin" cmp "$NFC_ROOT/bin/netfencectl" "$I/bin/netfencectl"
nfc_check "both are executable" test -x "$I/cni/netfence" -a -x "$I/bin/netfencectl"
nfc_check "the conflist ends in {\"type\": \"netfence\"} after bridge" \
	jq -e '.plugins | length == 2 and .[0].type == "bridge" and .[-1] == {"type": "netfence"}' "$I/x.conflist"
nfc_check "the rest of the conflist is kept" jq -e '.name == "nfc" and .cniVersion == "1.0.0" and .plugins[0].bridge == "nfbr0"' "$I/x.conflist"
nfc_check "install.sh a second time" inst --cni-bin-dir "$I/cni" --prefix "$I" --conflist "$I/x.conflist"
nfc_check "netfence is not added twice" jq -e '[.plugins[] | select(.type == "netfence")] | length == 1' "$I/x.conflist"
jq '.plugins |= map(select(.type != "netfence"))' "$NFC_DIR/net.d/nfc.conflist" >"$I/y.conflist"
nfc_check "install.sh --state puts stateFile in the entry" inst --cni-bin-dir "$I/cni" --prefix "$I" --conflist "$I/y.conflist" --state /srv/nf/state.json
nfc_check "... {\"type\": \"netfence\", \"stateFile\": \"/srv/nf/state.json\"}" \
	jq -e '.plugins[-1] == {"type": "netfence", "stateFile": "/srv/nf/state.json"}' "$I/y.conflist"
jq '.plugins[0] + {cniVersion: .cniVersion, name: .name}' "$NFC_DIR/net.d/nfc.conflist" >"$I/single.conf"
cp "$I/single.conf" "$I/single.orig"
out=$(inst --cni-bin-dir "$I/cni" --prefix "$I" --conflist "$I/single.conf" 2>&1)
rc=$?
echo "   $(tail -1 <<<"$out")"
nfc_check "a conf without \"plugins\" is refused" test $rc != 0
nfc_check "... with a clear error" grep -q 'plugins: missing or not an array' <<<"$out"
nfc_check "... and is left as it was" cmp "$I/single.orig" "$I/single.conf"
nfc_check_not "... no temp file left" compgen -G "$I/*netfence-tmp*"

nfc_summary
