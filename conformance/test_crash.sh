#!/bin/bash
# Crashes: ADD, DEL and netfencectl apply are killed (SIGKILL) at random
# points, many times. The state file must always be the old or the new one,
# never torn; after the next ADD, DEL or `netfencectl sync` the kernel must
# hold exactly what the state implies.
set -u
. "$(dirname "$0")/lib.sh"

NFC_PLUGIN_NETFENCE=1
ROUNDS=${NFC_CRASH_ROUNDS:-60}
nfc_setup_node
STATE=$NFC_DIR/state.json
# The runtime execs the plugin from CNI_PATH: put a killer in between. The
# delay (seconds, e.g. 0.002345) of the next run is read from a file; 0 = no
# kill. A run that is not killed records how long it took (microseconds), so
# the kill points can be drawn from the whole length of a real run on this
# machine, however fast or slow it is.
rm "$NFC_DIR/bin/netfence"
cat >"$NFC_DIR/bin/netfence" <<EOF2
#!/bin/bash
d=\$(cat "$NFC_DIR/kill-after" 2>/dev/null || echo 0)
if [ "\$d" = 0 ]; then
	t0=\${EPOCHREALTIME/./}
	"$NFC_ROOT/bin/netfence"
	rc=\$?
	t1=\${EPOCHREALTIME/./}
	[ \$rc = 0 ] && echo \$((t1 - t0)) >"$NFC_DIR/took.\$CNI_COMMAND"
	exit \$rc
fi
timeout -s KILL "\$d" "$NFC_ROOT/bin/netfence"
rc=\$?
[ \$rc = 137 ] && echo "\$CNI_COMMAND" >>"$NFC_DIR/plugin-killed"
exit \$rc
EOF2
chmod +x "$NFC_DIR/bin/netfence"
echo 0 >"$NFC_DIR/kill-after"

nfc_ctl apply -f "$NFC_ROOT/testdata/namespaces.yaml" >/dev/null
cat >"$NFC_DIR/p1.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: crash-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: foo}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: foo}}}], ports: [{port: 80}]}]
YAML
sed 's/port: 80/port: 81/' "$NFC_DIR/p1.yaml" >"$NFC_DIR/p2.yaml"
nfc_ctl apply -f "$NFC_DIR/p1.yaml" >/dev/null
nfc_pod base default app:foo || nfc_die "pod base"

# How long each command takes here when nobody kills it (microseconds).
nfc_pod calib default app:foo || nfc_die "pod calib"
nfc_pod_del calib
took_add=$(cat "$NFC_DIR/took.ADD") took_del=$(cat "$NFC_DIR/took.DEL")
t0=${EPOCHREALTIME/./}
nfc_ctl apply -f "$NFC_DIR/p1.yaml" >/dev/null
took_apply=$((${EPOCHREALTIME/./} - t0))
echo "   unkilled: ADD ${took_add} us, DEL ${took_del} us, apply ${took_apply} us"
# A kill point: uniform from 0.2 ms to 1.5x the command's unkilled length, so
# about two runs in three are killed somewhere along their whole length and
# the rest complete (leaving pods for the DELs).
kill_at() {
	local us=$((200 + (RANDOM * 32768 + RANDOM) % ($1 * 3 / 2)))
	printf '%d.%06d' $((us / 1000000)) $((us % 1000000))
}

retry_fail=0 torn=0 killed=0 adds=0 dels=0 applies=0
live=()
state_ok() { [ ! -e "$STATE" ] || jq -e '.pods and .networkPolicies' "$STATE" >/dev/null 2>&1; }
for r in $(seq 1 "$ROUNDS"); do
	case $((RANDOM % 3)) in
	0)
		kill_at "$took_add" >"$NFC_DIR/kill-after"
		if nfc_pod "c$r" default app:foo >/dev/null 2>&1; then
			live+=("c$r")
		else
			# as kubelet does after a failed ADD: DEL it (not killed)
			echo 0 >"$NFC_DIR/kill-after"
			nfc_cni del "c$r" >/dev/null 2>&1 || retry_fail=$((retry_fail + 1))
			nfc_pod_del "c$r" >/dev/null 2>&1
		fi
		adds=$((adds + 1))
		;;
	1)
		# nothing to DEL: attach one (not killed) first, so every third
		# round kills a DEL
		[ ${#live[@]} -gt 0 ] || { nfc_pod "c$r" default app:foo >/dev/null 2>&1 && live+=("c$r"); }
		if [ ${#live[@]} -gt 0 ]; then
			victim=${live[0]}
			kill_at "$took_del" >"$NFC_DIR/kill-after"
			if ! nfc_cni del "$victim" >/dev/null 2>&1; then
				# a runtime retries a failed DEL until it succeeds
				echo 0 >"$NFC_DIR/kill-after"
				nfc_cni del "$victim" >/dev/null 2>&1 || retry_fail=$((retry_fail + 1))
			fi
			nfc_pod_del "$victim" >/dev/null 2>&1
			live=("${live[@]:1}")
			dels=$((dels + 1))
		fi
		;;
	2)
		f=$NFC_DIR/p$((RANDOM % 2 + 1)).yaml
		nfc__nsexec "$NFC_NODE" env NETFENCE_STATE="$STATE" timeout -s KILL "$(kill_at "$took_apply")" \
			"$NFC_NETFENCECTL" apply -f "$f" >/dev/null 2>&1
		[ $? = 137 ] && killed=$((killed + 1))
		applies=$((applies + 1))
		;;
	esac
	echo 0 >"$NFC_DIR/kill-after"
	state_ok || { torn=$((torn + 1)); cp "$STATE" "$NFC_DIR/torn.$r"; }
done
pk=$(sort "$NFC_DIR/plugin-killed" 2>/dev/null | uniq -c | tr '\n' ' ')
echo "   $ROUNDS rounds: $adds ADD, $dels DEL, $applies apply; killed: $killed apply, plugin: ${pk:-none}"
nfc_check "some ADDs were really killed" grep -qx ADD "$NFC_DIR/plugin-killed"
nfc_check "some DELs were really killed" grep -qx DEL "$NFC_DIR/plugin-killed"
nfc_check "some applies were really killed" test "$killed" -gt 0
nfc_check "every DEL after a killed ADD or DEL succeeded ($retry_fail failed)" test "$retry_fail" = 0
nfc_check "the state file was never torn (old or new, always whole JSON)" test "$torn" = 0

echo "== after the next ADD (not killed), the kernel equals the state"
nfc_check "ADD after the crashes" nfc_pod after1 default app:foo
nfc_check "kernel == state after ADD" nfc_kernel_matches_plan
echo "== after a DEL"
nfc_check "DEL" nfc_pod_del after1
nfc_check "kernel == state after DEL" nfc_kernel_matches_plan

echo "== a crash between the kernel change and the state rename, then an ADD that changes nothing"
# kill apply right after its batch (the marker is there): emulate by leaving
# a marker and a kernel that differs from the state
nfc_in node nft flush chain inet netfence prerouting
touch "$STATE.dirty"
nfc_check "ADD of a pod nothing selects" nfc_pod bystander default app:other
nfc_check "kernel == state (the marker forced a re-program)" nfc_kernel_matches_plan
nfc_check_not "the marker is gone" test -e "$STATE.dirty"
nfc_in node nft flush chain inet netfence prerouting
nfc_check "netfencectl sync" nfc_ctl sync
nfc_check "kernel == state after sync" nfc_kernel_matches_plan
echo "== a power loss that leaves the state file zero-filled (an ADD's, which is not synced)"
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: torn}\n' >"$NFC_DIR/torn-ns.yaml"
nfc_check "a policy change" nfc_ctl apply -f "$NFC_DIR/torn-ns.yaml"
nfc_check "... links the file it synced as <state>.synced" \
	test "$(stat -c %i "$STATE")" = "$(stat -c %i "$STATE.synced")"
synced_ino=$(stat -c %i "$STATE.synced")
nfc_check "ADD of a selected pod" nfc_pod torn1 default app:foo
nfc_check "... does not sync: <state>.synced is the same file" test "$(stat -c %i "$STATE.synced")" = "$synced_ino"
nfc_check "... and the state file a new one" test "$(stat -c %i "$STATE")" != "$synced_ino"
# what XFS can leave of a file renamed in before its data reached the disk
head -c "$(stat -c %s "$STATE")" /dev/zero >"$STATE"
nfc_check "netfencectl sync reads <state>.synced instead, and says so" \
	sh -c "ip netns exec $NFC_NODE env NETFENCE_STATE=$STATE $NFC_NETFENCECTL sync 2>&1 | grep -q 'state.json.synced'"
nfc_check "kernel == state (torn1, attached after the last sync, is not in it)" nfc_kernel_matches_plan
nfc_check "ADD of another pod" nfc_pod torn2 default app:foo
nfc_check "... writes the state file whole again, with the policies and without torn1" \
	jq -e '(.networkPolicies | length) == 1 and ([.pods[].name] | index("torn1") == null) and ([.pods[].name] | index("torn2") != null)' "$STATE"
nfc_check "kernel == state" nfc_kernel_matches_plan
nfc_check "DEL of torn1 (no record left: nothing to do)" nfc_pod_del torn1
nfc_check "DEL of torn2" nfc_pod_del torn2
for p in base "${live[@]}"; do
	nfc_check "CHECK $p" nfc_cni check "$p"
done
nfc_summary
