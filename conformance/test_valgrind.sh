#!/bin/bash
# The plugin's ADD, CHECK and DEL, and netfencectl apply/delete, run under
# valgrind on a real chain (bridge + host-local + netfence): no leak, no
# invalid access. Each valgrind run writes its own log; any error fails.
set -u
. "$(dirname "$0")/lib.sh"

NFC_PLUGIN_NETFENCE=1
nfc_setup_node

VG="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --log-file=$NFC_DIR/log/vg.%p.log"
# The runtime execs the plugin by name from CNI_PATH: put valgrind in between.
rm "$NFC_DIR/bin/netfence"
cat >"$NFC_DIR/bin/netfence" <<EOF2
#!/bin/sh
exec $VG "$NFC_ROOT/build/netfence-dynamic" "\$@"
EOF2
chmod +x "$NFC_DIR/bin/netfence"

vg_ctl() { nfc__nsexec "$NFC_NODE" env NETFENCE_STATE="$NFC_DIR/state.json" $VG "$NFC_NETFENCECTL" "$@"; }

nfc_check "apply (valgrind)" vg_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" -f "$NFC_ROOT/testdata/foo-deny-external-egress.yaml"
nfc_check "ADD kube-dns (valgrind)" nfc_pod kube-dns kube-system k8s-app:kube-dns
nfc_check "ADD foo, selected (valgrind)" nfc_pod foo default app:foo
nfc_check "ADD bar, not selected (valgrind)" nfc_pod bar default app:bar
nfc_check "CHECK foo (valgrind)" nfc_cni check foo
nfc_check "get pods (valgrind)" vg_ctl get pods -A
nfc_check "show (valgrind)" vg_ctl show
nfc_check "DEL foo (valgrind)" nfc_cni del foo
nfc_check "DEL foo again (valgrind)" nfc_cni del foo
rm -f "$NFC_DIR/pods/foo.attached"
# idle kinds (enforce/txn.h): foo's DEL left one; foo2 takes it over; with
# one kept at most, foo3's DEL (other labels, the same kind) drops foo2's
nfc_check "foo's DEL left an idle kind" test "$(jq '[.pods[] | select(.idle)] | length' "$NFC_DIR/state.json")" = 1
jq '.plugins[-1].idleKindChains = 1' "$NFC_DIR/net.d/nfc.conflist" >"$NFC_DIR/c.tmp" && mv "$NFC_DIR/c.tmp" "$NFC_DIR/net.d/nfc.conflist"
nfc_check "ADD foo2, of the idle kind (valgrind)" nfc_pod foo2 default app:foo
nfc_check "ADD foo3, of that kind, other labels (valgrind)" nfc_pod foo3 default app:foo,x:y
nfc_check "DEL foo2: idle again (valgrind)" nfc_cni del foo2
rm -f "$NFC_DIR/pods/foo2.attached"
nfc_check "DEL foo3: its idle kind replaces foo2's (valgrind)" nfc_cni del foo3
rm -f "$NFC_DIR/pods/foo3.attached"
nfc_check "... one idle kind, foo3's labels" \
	jq -e '[.pods[] | select(.idle)] | length == 1 and .[0].labels == {"app": "foo", "x": "y"}' "$NFC_DIR/state.json"
nfc_check "delete -f (valgrind)" vg_ctl delete -f "$NFC_ROOT/testdata/foo-deny-external-egress.yaml"
nfc_check_not "bad manifest is rejected (valgrind)" vg_ctl apply -f "$NFC_ROOT/testdata/cni/add-ptp-0.4.0.json"

# GC and STATUS are not in libcni 1.1.2: call the plugin as a 1.1 runtime would
vg_plugin() { # CNI_COMMAND <stdin
	nfc__nsexec "$NFC_NODE" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_PATH="$NFC_DIR/bin" $VG "$NFC_ROOT/build/netfence-dynamic"
}
keep=$(jq -c '{containerID: .containerID, ifname: .ifname}' <<<"$(nfc_ctl get pods -A -o json | jq -c '.items[] | select(.name == "kube-dns")')")
printf '{"cniVersion":"1.1.0","name":"nfc","type":"netfence","stateFile":"%s","cni.dev/valid-attachments":[%s]}' \
	"$NFC_DIR/state.json" "$keep" >"$NFC_DIR/gc.json"
nfc_check "GC keeping kube-dns only (valgrind)" vg_plugin GC <"$NFC_DIR/gc.json"
nfc_check "GC removed bar's record" test "$(nfc_ctl get pods -A -o json | jq '.items | length')" = 1
rm -f "$NFC_DIR/pods/bar.attached"
nfc_check "STATUS (valgrind)" vg_plugin STATUS <"$NFC_DIR/gc.json"

runs=$(ls "$NFC_DIR"/log/vg.*.log | wc -l)
nfc_check "valgrind ran ($runs runs)" test "$runs" -ge 17
bad=$(grep -l "ERROR SUMMARY: [1-9]\|definitely lost\|indirectly lost\|Invalid \(read\|write\)" "$NFC_DIR"/log/vg.*.log)
[ -n "$bad" ] && cat $bad >&2
nfc_check "valgrind logs are clean" test -z "$bad"
nfc_summary
