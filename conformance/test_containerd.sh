#!/bin/bash
# containerd 1.6 + `ctr run --cni`: netfence with a real container runtime.
# A private containerd (conformance/containerd/ctd.sh: own root, state and
# socket, node netns, private mount namespace) runs busybox containers built
# offline (conformance/containerd/mkimage.sh, with conformance/probe/probe in
# /bin). The conflist is lib.sh's: bridge + host-local (dual-stack) + netfence.
# Every verdict is probed from INSIDE a real container.
#
# Labels for pods started by ctr
# ------------------------------
# `ctr run --cni` sends an EMPTY CNI_ARGS (no K8S_POD_NAMESPACE, K8S_POD_NAME
# or labels; whatever CNI_ARGS you set is overwritten) and `ctr run --label`
# values never reach a CNI plugin. netfence then names the pod after
# CNI_CONTAINERID, which ctr sets to `<ctr-namespace>-<container-id>`
# (`ctr run ... foo` in ctr's namespace `default` is pod `default-foo`), in
# the Kubernetes namespace `default`. Give it labels in one of two ways:
#   (a) in the conflist's netfence entry, for EVERY pod of that network:
#         {"type": "netfence", "args": {"cni": {"labels": [{"key": "app", "value": "foo"}]}}}
#   (b) per container: register a v1 Pod under that name BEFORE `ctr run`:
#         apiVersion: v1
#         kind: Pod
#         metadata: {name: default-foo, namespace: default, labels: {app: foo}}
#       with `netfencectl apply -f pod.yaml` (re-applying it relabels the running pod).
# A ctr pod cannot be put in another Kubernetes namespace (that needs
# K8S_POD_NAMESPACE): write policies for ctr pods in namespace `default`.
#
# What is proven:
#   1. NP-14 (np14.md) with ctr: the seed's manifest adapted to namespace
#      default (below), and the in-cluster variant verbatim; a container
#      without app=foo reaches everything.
#   2. DEL with an empty CNI_NETNS (a non-detached `ctr run --rm` after its
#      task exited) removes the pod's record and every trace of it in nftables.
#   3. `ctr run -d` + `ctr task kill` + `ctr container rm` calls no DEL: the
#      record and the rules leak; CNI 1.1 GC (invoked directly, as a runtime
#      would, with the attachments that still run) removes them and keeps the
#      live ones filtered. STATUS succeeds.
#   4. Way (a): args.cni.labels labels a container that nobody registered.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/containerd/ctd.sh"

nfc_setup_node
trap ctd_exit_trap EXIT
ctd_start
nfc_external
nfc_serve node tcp 80
SHARE=$NFC_DIR/share

# The seed's manifest selects kube-dns by namespace kube-system. A ctr pod is
# always in namespace default (no K8S_POD_NAMESPACE), so the kube-dns-like
# container `dns` is registered as pod default-dns (k8s-app=kube-dns) in
# namespace default, and the policy's namespaceSelector names default: the
# same rule (DNS to the kube-dns pods only), in the namespace ctr can reach.
SEED_CTR=$NFC_DIR/seed-ctr.yaml
cat >"$SEED_CTR" <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: foo-deny-external-egress
spec:
  podSelector:
    matchLabels:
      app: foo
  policyTypes:
  - Egress
  egress:
  - to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: default
      podSelector:
        matchLabels:
          k8s-app: kube-dns
    ports:
      - port: 53
        protocol: UDP
      - port: 53
        protocol: TCP
EOF
INCLUSTER=$NFC_ROOT/testdata/foo-deny-external-egress-incluster.yaml

# register NAME key=value...: a v1 Pod default/NAME with those labels (way (b))
register() {
	local name=$1 kv labels=""
	shift
	for kv in "$@"; do labels="$labels\"${kv%%=*}\": \"${kv#*=}\", "; done
	echo "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"$name\",
	  \"namespace\": \"default\", \"labels\": {${labels%, }}}}" | nfc_ctl apply -f -
}

state_pods() { jq -c '.pods[]' "$NFC_DIR/state.json"; }
# pod_field POD JQ-EXPR: a field of the state record of pod default/POD
pod_field() { jq -r --arg n "$1" ".pods[] | select(.name == \$n) | $2" "$NFC_DIR/state.json"; }
pod_ip() { # pod_ip POD 4|6
	local sel='contains(":")'
	[ "$2" = 4 ] && sel='contains(":") | not'
	pod_field "$1" ".ips[] | select($sel) | sub(\"/.*\"; \"\")" | head -1
}
has_container_record() { jq -e --arg c "$1" '.pods[] | select(.containerID == $c)' "$NFC_DIR/state.json" >/dev/null; }
ctr_knows() { ctd_ctr container ls -q | grep -qx "$1"; }
has_policy() { nfc_ctl get networkpolicies | grep -qw "$1"; }
has_record() { nfc_ctl get pods -A | awk -v n="$1" '$2 == n {f=1} END {exit !f}'; }
ruleset() { nfc_in node nft list ruleset; }
# What a CNI 1.1 runtime sends for GC: the network's config (cniVersion
# 1.1.0, name) and the attachments it still has, as the plugin saw them:
# CNI_CONTAINERID <ctr-namespace>-<id>, ifname eth0.
gc_conf() { # gc_conf [ID...]: stdin for GC with these ctr container IDs as valid
	local valid
	valid=$(printf '%s\n' "$@" | jq -R 'select(length > 0) | {containerID: ("default-" + .), ifname: "eth0"}' | jq -s .)
	jq --argjson valid "$valid" '.plugins[-1] + {cniVersion: "1.1.0", name: .name, "cni.dev/valid-attachments": $valid}' \
		"$NFC_DIR/net.d/nfc.conflist"
}
status_conf() { gc_conf | jq 'del(."cni.dev/valid-attachments")'; }

# Helpers the containers run (busybox sh), in /share/lib.sh.
cat >"$SHARE/lib.sh" <<'EOF'
# Wait until eth0 has no tentative IPv6 address (DAD), so that a failed
# probe means "filtered", not "address not usable yet".
dadwait() {
	i=0
	while ip -6 addr show dev eth0 | grep -q tentative && [ $i -lt 60 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
# expect allow|deny tcp|udp ADDR PORT DESC: prints one RESULT line
expect() {
	want=$1 proto=$2 addr=$3 port=$4
	shift 4
	got=deny
	if [ "$want" = allow ]; then
		for t in 1 2 3; do
			err=$(probe connect "$proto" "$addr" "$port" 2000 2>&1) && { got=allow; break; }
			sleep 0.2
		done
	else
		err=$(probe connect "$proto" "$addr" "$port" 1500 2>&1)
		rc=$?
		if [ $rc = 0 ]; then
			got=allow err=connected
		elif [ $rc != 1 ]; then
			got=error
		fi
	fi
	echo "RESULT $want $got $proto $addr $port $* [${err#probe: }]"
}
# expect_http allow|deny URL GREP DESC: busybox wget (timeout: wget -T segfaults)
expect_http() {
	want=$1 url=$2 pat=$3
	shift 3
	got=deny
	if out=$(timeout 3 wget -q -O- "$url" 2>&1) && echo "$out" | grep -q "$pat"; then got=allow; fi
	echo "RESULT $want $got http $url - $* [$(echo "$out" | head -c 80 | tr '\n' ' ')]"
}
EOF

# A client container's checks: plan_new NAME; plan_add CMD ARGS... (one
# `expect`/`expect_http` each); plan_finish NAME [hold] writes /share/NAME.sh,
# which a fresh `ctr run --rm --cni ... sh /share/NAME.sh` runs (the checks in
# parallel); plan_report NAME reports its RESULT lines.
plan_new() {
	printf '. /share/lib.sh\ndadwait\n' >"$SHARE/$1.sh"
	echo 0 >"$NFC_DIR/run/$1.n"
}
plan_add() {
	local name=$1
	shift
	local arg line=""
	for arg in "$@"; do line="$line'${arg//\'/\'\\\'\'}' "; done # single-quoted for sh
	echo "$line&" >>"$SHARE/$name.sh"
	echo $(($(cat "$NFC_DIR/run/$name.n") + 1)) >"$NFC_DIR/run/$name.n"
}
# plan_finish NAME [hold]: with hold, the container waits for /share/NAME.exit
# after its checks (and announces /share/NAME.done) so the test can look at it.
plan_finish() {
	echo wait >>"$SHARE/$1.sh"
	if [ "${2:-}" = hold ]; then
		cat >>"$SHARE/$1.sh" <<EOF
touch /share/$1.done
i=0; while [ ! -e /share/$1.exit ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
EOF
	fi
}
plan_report() {
	local name=$1 want got proto addr port desc line n ok
	n=$(grep -c '^RESULT ' "$NFC_DIR/log/$name.out")
	nfc_check "$name: the container ran its $(cat "$NFC_DIR/run/$name.n") checks (got $n)" \
		test "$n" = "$(cat "$NFC_DIR/run/$name.n")"
	[ "$n" = "$(cat "$NFC_DIR/run/$name.n")" ] || cat "$NFC_DIR/log/$name.out" >&2
	while read -r _ want got proto addr port desc; do
		ok=0
		[ "$want" = "$got" ] && ok=1
		line=${desc%% \[*}
		local detail=" [${desc#* \[}"
		[ "$ok" = 1 ] && [ "$want" = allow ] && detail=""
		if [ "$proto" = http ]; then
			nfc__report "${want^^}" "$ok" "$name" "$line ($addr)" "$detail"
		else
			nfc__report "${want^^}" "$ok" "$name" "$line $port/$proto ($addr)" "$detail"
		fi
	done < <(grep '^RESULT ' "$NFC_DIR/log/$name.out" | sort -k6)
}
# wait_file FILE [SECONDS]: until it exists (default 10 s)
wait_file() {
	for _ in $(seq $((${2:-10} * 10))); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

echo "== STATUS on a fresh node (no state file, no netfence table yet)"
out=$(nfc_netfence CNI_COMMAND=STATUS CNI_PATH="$NFC_DIR/bin" < <(status_conf) 2>&1)
nfc_check "STATUS succeeds [$out]" test $? = 0

echo "== servers: dns (kube-dns-like, registered k8s-app=kube-dns), web (no labels)"
nfc_check "apply the seed's manifest adapted to namespace default" nfc_ctl apply -f "$SEED_CTR"
nfc_check "register pod default-dns (k8s-app=kube-dns)" register default-dns k8s-app=kube-dns
nfc_check "register pod default-foo (app=foo)" register default-foo app=foo
serve_cmd() { # serve_cmd NAME PROTO/PORT...: servers, a ready file each
	local name=$1 pp s=". /share/lib.sh; dadwait; "
	shift
	for pp in "$@"; do
		s="$s probe serve --ready /share/$name-${pp%/*}-${pp#*/}.ready ${pp%/*} ${pp#*/} & "
	done
	echo "$s wait"
}
ctd_run dns -d --null-io -- sh -c "$(serve_cmd dns udp/53 tcp/53 tcp/8080 udp/5353)" >/dev/null ||
	nfc_die "ctr run dns"
mkdir -p "$SHARE/www"
echo "hello from web" >"$SHARE/www/index.html"
ctd_run web -d --null-io -- sh -c "httpd -f -p 80 -h /share/www & $(serve_cmd web udp/5353)" >/dev/null ||
	nfc_die "ctr run web"
for f in dns-udp-53 dns-tcp-53 dns-tcp-8080 dns-udp-5353 web-udp-5353; do
	wait_file "$SHARE/$f.ready" || nfc_die "server $f did not start"
done
nfc_check "CNI_CONTAINERID from ctr is <ctr-namespace>-<id>: default-dns" \
	sh -c "jq -e '.pods[] | select(.containerID == \"default-dns\" and .name == \"default-dns\" and .namespace == \"default\")' '$NFC_DIR/state.json'"
nfc_check "dns got its labels from the registered Pod" \
	test "$(pod_field default-dns '.labels["k8s-app"]')" = kube-dns
DNS4=$(pod_ip default-dns 4) DNS6=$(pod_ip default-dns 6)
WEB4=$(pod_ip default-web 4) WEB6=$(pod_ip default-web 6)
if [ -z "$DNS4" ] || [ -z "$DNS6" ] || [ -z "$WEB4" ] || [ -z "$WEB6" ]; then
	nfc_die "no addresses for dns/web in the state file: $(state_pods)"
fi
nfc_wait_port node tcp "$WEB4" 80
nfc_wait_port node tcp "$WEB6" 80
echo "dns $DNS4 $DNS6, web $WEB4 $WEB6"

# np14_plan NAME COLUMN: the NP-14 table for foo (seed|incluster) or for a
# container that no policy selects (open: everything allowed).
np14_plan() {
	local name=$1 col=$2 v dns web ext node
	pick() { case $col in seed) echo "$1" ;; incluster) echo "$2" ;; open) echo allow ;; esac; }
	plan_new "$name"
	for v in 4 6; do
		if [ $v = 4 ]; then
			dns=$DNS4 web=$WEB4 ext=$NFC_EXT4 node=$NFC_NODE4
		else
			dns=$DNS6 web=$WEB6 ext=$NFC_EXT6 node=$NFC_NODE6
		fi
		plan_add "$name" expect "$(pick allow allow)" udp "$dns" 53 "IPv$v dns container"
		plan_add "$name" expect "$(pick allow allow)" tcp "$dns" 53 "IPv$v dns container"
		plan_add "$name" expect "$(pick deny allow)" tcp "$dns" 8080 "IPv$v dns container, other port"
		plan_add "$name" expect "$(pick deny allow)" udp "$dns" 5353 "IPv$v dns container, other port"
		plan_add "$name" expect "$(pick deny allow)" tcp "$web" 80 "IPv$v web container"
		plan_add "$name" expect "$(pick deny allow)" udp "$web" 5353 "IPv$v web container, other port"
		plan_add "$name" expect "$(pick deny deny)" tcp "$ext" 80 "IPv$v external (www.example.com)"
		plan_add "$name" expect "$(pick deny allow)" udp "$ext" 53 "IPv$v external"
		plan_add "$name" expect "$(pick deny deny)" tcp "$node" 80 "IPv$v node's own address"
	done
	plan_add "$name" expect_http "$(pick deny deny)" "http://$NFC_EXT4/" "hello from external" "wget external"
	plan_add "$name" expect_http "$(pick deny allow)" "http://$WEB4:80/" "hello from web" "wget web container"
}

echo "== NP-14, seed manifest (adapted): foo (registered app=foo) and bar (no labels), in parallel"
np14_plan foo seed
plan_finish foo hold
np14_plan bar open
plan_finish bar
ctd_run foo --rm -- sh /share/foo.sh >"$NFC_DIR/log/foo.out" 2>&1 &
foo_pid=$!
ctd_run bar --rm -- sh /share/bar.sh >"$NFC_DIR/log/bar.out" 2>&1 &
bar_pid=$!
wait_file "$SHARE/foo.done" 40 || { cat "$NFC_DIR/log/foo.out" >&2; nfc_die "foo did not finish its checks"; }
# While foo runs: what DEL must remove.
FOO_VETH=$(pod_field default-foo .hostVeth)
FOO4=$(pod_ip default-foo 4) FOO6=$(pod_ip default-foo 6)
echo "foo $FOO4 $FOO6, host veth $FOO_VETH"
nfc_check "foo is recorded as default/default-foo with app=foo" \
	test "$(pod_field default-foo '.labels.app')" = foo
nfc_check "netfencectl get pods -A lists default-foo" has_record default-foo
rs=$(ruleset)
nfc_check "foo's veth $FOO_VETH is guarded while it runs" grep -qF "\"$FOO_VETH\"" <<<"$rs"
nfc_check "foo's address $FOO4 is in the ruleset while it runs" grep -qwF "$FOO4" <<<"$rs"
nfc_check "kernel ruleset == netfencectl show" nfc_kernel_matches_plan
touch "$SHARE/foo.exit"
wait "$foo_pid"
nfc_check "ctr run --rm foo exited 0" test $? = 0
wait "$bar_pid"
nfc_check "ctr run --rm bar exited 0" test $? = 0
plan_report foo
plan_report bar

echo "== DEL with an empty CNI_NETNS (ctr run --rm, after the task exited)"
nfc_check_not "no record of default-foo (netfencectl get pods -A)" has_record default-foo
nfc_check_not "no state record of container default-foo" has_container_record default-foo
rs=$(ruleset)
nfc_check_not "no trace of foo's veth $FOO_VETH in nft list ruleset" grep -qF "$FOO_VETH" <<<"$rs"
nfc_check_not "no trace of foo's addresses $FOO4 $FOO6" grep -qwF -e "$FOO4" -e "$FOO6" <<<"$rs"
nfc_check_not "the libcni cache entry of foo is gone" test -e "$NFC_DIR/cache/results/nfc-default-foo-eth0"

echo "== NP-14, in-cluster variant (verbatim), a new foo"
nfc_check "apply the in-cluster variant" nfc_ctl apply -f "$INCLUSTER"
np14_plan foo incluster
plan_finish foo
ctd_run foo --rm -- sh /share/foo.sh >"$NFC_DIR/log/foo.out" 2>&1
nfc_check "ctr run --rm foo exited 0" test $? = 0
plan_report foo
nfc_check_not "no record of default-foo after its DEL" has_record default-foo

echo "== GC: ctr run -d live and dead (both app=foo), then dead is killed and removed without DEL"
nfc_check "apply the seed's manifest (adapted) again" nfc_ctl apply -f "$SEED_CTR"
register default-live app=foo >/dev/null
register default-dead app=foo >/dev/null
for id in live dead; do
	ctd_run "$id" -d --null-io -- sh -c ". /share/lib.sh; dadwait; touch /share/$id.ready; exec sleep 600" \
		>/dev/null || nfc_die "ctr run $id"
	wait_file "$SHARE/$id.ready" || nfc_die "$id did not start"
done
DEAD_VETH=$(pod_field default-dead .hostVeth)
DEAD4=$(pod_ip default-dead 4) DEAD6=$(pod_ip default-dead 6)
echo "dead $DEAD4 $DEAD6, host veth $DEAD_VETH; live $(pod_ip default-live 4)"
nfc_check "dead's address is in the ruleset while it runs" grep -qwF "$DEAD4" <<<"$(ruleset)"
ctd_task_gone dead
nfc_check_not "ctr no longer knows container dead" ctr_knows dead
nfc_check_not "dead's veth $DEAD_VETH vanished with its netns" nfc_in node ip link show "$DEAD_VETH"
nfc_check "LEAK (no DEL): the record of default-dead is still there" has_record default-dead
nfc_check "LEAK (no DEL): dead's addresses are still in the ruleset" grep -qwF -e "$DEAD4" -e "$DEAD6" <<<"$(ruleset)"
# Informational (kernel- and plugin-dependent, not netfence's to fix):
grep -qF "\"$DEAD_VETH\"" <<<"$(ruleset)" && w=still || w="no longer"
echo "info: the kernel $w lists the netdev chain on dead's vanished veth $DEAD_VETH"
leases=0
for a in "$DEAD4" "$DEAD6"; do [ -e "$NFC_DIR/ipam/nfc/$a" ] && leases=$((leases + 1)); done
[ -e "$NFC_DIR/cache/results/nfc-default-dead-eth0" ] && w=keeps || w="does not keep"
echo "info: host-local keeps $leases of dead's 2 leases, libcni $w its cache entry (only netfence is GCed here)"

# GC with the attachments ctr still runs (ctr's IDs as the plugin saw them).
running=$(ctd_tasks_running | sort | tr '\n' ' ')
echo "running tasks: $running"
nfc_check "live, dns and web still run" test "$running" = "dns live web "
# shellcheck disable=SC2086
gc_conf $running >"$NFC_DIR/gc.json"
cat "$NFC_DIR/gc.json"
out=$(nfc_netfence CNI_COMMAND=GC CNI_PATH="$NFC_DIR/bin" <"$NFC_DIR/gc.json" 2>&1)
nfc_check "GC succeeds [$out]" test $? = 0
nfc_check_not "after GC: no record of default-dead" has_record default-dead
rs=$(ruleset)
nfc_check_not "after GC: no trace of dead's addresses $DEAD4 $DEAD6" grep -qwF -e "$DEAD4" -e "$DEAD6" <<<"$rs"
nfc_check_not "after GC: no trace of dead's veth $DEAD_VETH" grep -qF "$DEAD_VETH" <<<"$rs"
for p in default-live default-dns default-web; do
	nfc_check "after GC: $p is still recorded" has_record "$p"
done
nfc_check "after GC: live's address is still in the ruleset" grep -qwF "$(pod_ip default-live 4)" <<<"$rs"
nfc_check "kernel ruleset == netfencectl show after GC" nfc_kernel_matches_plan
# live is still filtered: probes from inside it (ctr task exec).
in_live() { ctd_ctr task exec --exec-id "p$RANDOM" live probe connect "$@"; }
nfc_check "live (app=foo) still reaches dns 53/udp" in_live udp "$DNS4" 53 2000
nfc_check "live (app=foo) still reaches dns 53/tcp over IPv6" in_live tcp "$DNS6" 53 2000
nfc_check_not "live (app=foo) is still denied external 80/tcp" in_live tcp "$NFC_EXT4" 80 1500
nfc_check_not "live (app=foo) is still denied web 80/tcp" in_live tcp "$WEB6" 80 1500

echo "== STATUS"
out=$(nfc_netfence CNI_COMMAND=STATUS CNI_PATH="$NFC_DIR/bin" < <(status_conf) 2>&1)
nfc_check "STATUS succeeds with pods attached [$out]" test $? = 0

echo "== way (a): the conflist's args.cni.labels labels an unregistered container"
cp "$NFC_DIR/net.d/nfc.conflist" "$NFC_DIR/nfc.conflist.orig"
jq '.plugins[-1].args = {cni: {labels: [{key: "app", value: "foo"}]}}' "$NFC_DIR/nfc.conflist.orig" \
	>"$NFC_DIR/net.d/nfc.conflist"
plan_new anon
plan_add anon expect allow udp "$DNS4" 53 "IPv4 dns container"
plan_add anon expect deny tcp "$NFC_EXT4" 80 "IPv4 external (www.example.com)"
plan_add anon expect deny tcp "$NFC_EXT6" 80 "IPv6 external (www.example.com)"
plan_finish anon hold
ctd_run anon --rm -- sh /share/anon.sh >"$NFC_DIR/log/anon.out" 2>&1 &
anon_pid=$!
wait_file "$SHARE/anon.done" 40 || { cat "$NFC_DIR/log/anon.out" >&2; nfc_die "anon did not finish its checks"; }
nfc_check "anon is recorded as default-anon with app=foo (from the conflist)" \
	test "$(pod_field default-anon '.labels.app')" = foo
touch "$SHARE/anon.exit"
wait "$anon_pid"
nfc_check "ctr run --rm anon exited 0" test $? = 0
plan_report anon
nfc_check_not "no record of default-anon after its DEL" has_record default-anon
cp "$NFC_DIR/nfc.conflist.orig" "$NFC_DIR/net.d/nfc.conflist"

echo "== every container gone without DEL, GC with no valid attachment: nothing left"
for id in live dns web; do ctd_task_gone "$id"; done
gc_conf >"$NFC_DIR/gc.json"
out=$(nfc_netfence CNI_COMMAND=GC CNI_PATH="$NFC_DIR/bin" <"$NFC_DIR/gc.json" 2>&1)
nfc_check "GC [] succeeds [$out]" test $? = 0
nfc_check "no pod recorded" test "$(jq '.pods | length' "$NFC_DIR/state.json")" = 0
rs=$(ruleset)
nfc_check_not "no kind's chain left in the node" grep -q "chain kind_" <<<"$rs"
nfc_check_not "no dispatch entry left" grep -q ": jump kind_" <<<"$rs"
nfc_check_not "no anti-spoofing chain left" grep -q "chain as_" <<<"$rs"
nfc_check "the policy is kept" has_policy foo-deny-external-egress
nfc_check "... and so is table inet netfence, with its peer sets (the tables live as long as an egress policy)" \
	grep -q "table inet netfence" <<<"$rs"

nfc_summary
