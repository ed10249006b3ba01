#!/bin/bash
# Concurrency: the state file is shared by parallel plugin runs and the CLI.
# 50 ADDs at once, then ADDs and DELs interleaved with netfencectl apply and
# delete. No pod record may be lost, no rule duplicated or missing, and the
# state must parse afterwards; the kernel must hold exactly what the state
# implies.
set -u
. "$(dirname "$0")/lib.sh"

NFC_PLUGIN_NETFENCE=1
N=${NFC_CONCURRENT:-50}
nfc_setup_node
nfc_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" >/dev/null
# every pod is selected (app=load), so every ADD changes the kernel
cat >"$NFC_DIR/load.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: load-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: load}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: load}}}]
    ports: [{port: 80}]
YAML
nfc_ctl apply -f "$NFC_DIR/load.yaml" >/dev/null
# the bridge exists before the storm (bridge's own creation race is not ours)
nfc_pod p0 default app:load || nfc_die "pod p0"

echo "== $N ADDs in parallel"
pids=()
for i in $(seq 1 "$N"); do
	nfc_pod "p$i" default app:load >/dev/null 2>"$NFC_DIR/log/add-$i.err" &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
nfc_check "all $N parallel ADDs succeeded ($fails failed)" test "$fails" = 0
count() { nfc_ctl get pods -A -o json | jq '.items | length'; }
nfc_check "the state parses and holds $((N + 1)) pods" test "$(count)" = $((N + 1))
rs=$(nfc_in node nft list table inet netfence)
nfc_check "one chain for the kind (every pod is app=load)" test "$(grep -c 'chain kind_' <<<"$rs")" = 1
nfc_check "every pod's address jumps to it" \
	test "$(nfc_in node nft list map inet netfence egress4 | grep -o ': jump kind_' | wc -l)" = $((N + 1))
nfc_check "one anti-spoofing chain per pod" \
	test "$(nfc_netfence_tables nfc_in node | grep -c 'chain as_')" = $((N + 1))
nfc_check "the kernel holds exactly what the state implies" nfc_kernel_matches_plan

echo "== ADD and DEL interleaved with apply and delete"
(
	for i in $(seq 1 15); do
		nfc_ctl apply -f "$NFC_ROOT/testdata/foo-deny-external-egress-incluster.yaml" >/dev/null 2>&1
		nfc_ctl delete networkpolicy foo-deny-external-egress >/dev/null 2>&1
		sed "s/name: load-egress/name: load-extra-$i/" "$NFC_DIR/load.yaml" >"$NFC_DIR/extra-$i.yaml"
		nfc_ctl apply -f "$NFC_DIR/extra-$i.yaml" >/dev/null 2>&1
	done
) &
churn=$!
pids=()
for i in $(seq 1 20); do
	nfc_pod_del "p$i" >/dev/null 2>&1 &
	pids+=($!)
	nfc_pod "q$i" default app:load >/dev/null 2>"$NFC_DIR/log/addq-$i.err" &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
wait "$churn"
nfc_check "interleaved ADDs and DELs succeeded ($fails failed)" test "$fails" = 0
nfc_check "the state parses and holds $((N + 1)) pods" test "$(count)" = $((N + 1))
nfc_check "no deleted pod is left in the state" \
	test "$(nfc_ctl get pods -A -o json | jq '[.items[] | select(.name | test("^p([1-9]|1[0-9]|20)$"))] | length')" = 0
nfc_check "every policy of the churn is there" \
	test "$(nfc_ctl get netpol -o json | jq '[.items[] | select(.metadata.name | startswith("load-extra-"))] | length')" = 15
rs=$(nfc_in node nft list table inet netfence)
nfc_check "one chain for the kind (every pod is app=load)" test "$(grep -c 'chain kind_' <<<"$rs")" = 1
nfc_check "every pod's address jumps to it" \
	test "$(nfc_in node nft list map inet netfence egress4 | grep -o ': jump kind_' | wc -l)" = $((N + 1))
nfc_check "the kernel holds exactly what the state implies" nfc_kernel_matches_plan
nfc_check "no temp file or marker is left next to the state" \
	test -z "$(ls "$NFC_DIR" | grep -E '^state\.json\.(tmp|dirty)')"
# and filtering still works: a pod may reach another on 80 only
nfc_serve q2 tcp 80
nfc_serve q2 tcp 81
nfc_expect_allow q1 tcp "$(nfc_ip q2 4)" 80 "q2 (allowed by load-egress)"
nfc_expect_deny q1 tcp "$(nfc_ip q2 4)" 81 "q2 (no rule for 81)"
nfc_summary
