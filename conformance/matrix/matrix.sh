# conformance/matrix/matrix.sh: the truth-table suite's library (sourced by
# conformance/test_matrix.sh after lib.sh).
#
# Cluster: namespaces x, y, z (Namespace objects labelled ns=x|y|z), pods a, b,
# c in each (labelled pod=a|b|c; lib names x-a ... z-c), each serving TCP 80,
# 81 and UDP 80, 81 on IPv4 and IPv6 (probe serve), plus the external host
# (203.0.113.80, 2001:db8:ee::80) serving the same ports.
#
# Every change is made twice: to netfence (netfencectl in the node) and to the
# oracle's model (oracle.py), which computes the expected verdicts on its own.
#
#   mx_setup                  the cluster; MX_HAVE_PODS=1 when netfencectl applies kind Pod
#                             (then every pod declares named containerPorts), MX_HAVE_LABEL=1
#                             when it has `label`
#   mx_do VERB ARGS...        apply FILE... | label ... | delete networkpolicy NAME -n NS:
#                             netfencectl VERB ARGS, then the same change in the model
#   mx_probe TITLE            720 probes vs the oracle: truth tables, one CHECK line
#   mx_scenario DIR           run a scenario directory (see scenarios/README.md)
#   mx_reset                  delete every policy (both sides); check labels are back
#
#   MX_DUMP=1                 print `netfencectl show` after a step with a mismatch
#   MX_TIMEOUT=ms             probe timeout of the first pass (default 800); cells that
#                             should connect but did not are re-probed MX_RETRIES times
#                             (default 2) with MX_RETRY_TIMEOUT (default 2000)
# shellcheck shell=bash

MX_DIR=$NFC_CONF_DIR/matrix
MX_ORACLE=$MX_DIR/oracle.py
MX_TIMEOUT=${MX_TIMEOUT:-800}
MX_RETRIES=${MX_RETRIES:-2}
MX_RETRY_TIMEOUT=${MX_RETRY_TIMEOUT:-2000}
MX_NAMESPACES="x y z"
MX_PODS="a b c"
MX_HAVE_PODS=0
MX_HAVE_LABEL=0
MX_STEP=0

mx_oracle() { python3 "$MX_ORACLE" "$1" "$MX_MODEL" "${@:2}"; }

mx_setup() {
	nfc_setup_node
	MX_MODEL=$NFC_DIR/model.json
	MX_WORK=$NFC_DIR/matrix
	mkdir -p "$MX_WORK"
	local help
	help=$(nfc_ctl --help 2>&1)
	grep -qE '^ *label ' <<<"$help" && MX_HAVE_LABEL=1
	grep -qiE 'apply.*\bPod\b' <<<"$help" && MX_HAVE_PODS=1
	echo "netfencectl: label verb: $([ $MX_HAVE_LABEL = 1 ] && echo yes || echo no)," \
		"apply of kind Pod: $([ $MX_HAVE_PODS = 1 ] && echo yes || echo no)"

	local ns p svc
	for ns in $MX_NAMESPACES; do
		for p in $MX_PODS; do
			nfc_pod_as "$ns-$p" "$ns" "$p" "pod:$p" || nfc_die "pod $ns/$p"
		done
	done
	nfc_external
	for ns in $MX_NAMESPACES; do
		for p in $MX_PODS; do
			for svc in "tcp 80" "tcp 81" "udp 80" "udp 81"; do
				# shellcheck disable=SC2086
				nfc_serve "$ns-$p" $svc
			done
		done
	done
	# external: busybox httpd already serves TCP 80 (nfc_external)
	for svc in "tcp 81" "udp 80" "udp 81"; do
		# shellcheck disable=SC2086
		nfc_serve external $svc
	done

	# The oracle's model of the cluster.
	{
		echo '{"pods": ['
		local first=1
		for ns in $MX_NAMESPACES; do
			for p in $MX_PODS; do
				[ $first = 1 ] || echo ','
				first=0
				printf '{"key": "%s", "namespace": "%s", "name": "%s", "labels": {"pod": "%s"}, "ips": {"4": "%s", "6": "%s"}}' \
					"$ns-$p" "$ns" "$p" "$p" "$(nfc_ip "$ns-$p" 4)" "$(nfc_ip "$ns-$p" 6)"
			done
		done
		printf '], "externals": [{"key": "ext", "ips": {"4": "%s", "6": "%s"}}]}\n' "$NFC_EXT4" "$NFC_EXT6"
	} >"$MX_WORK/cluster.json"
	mx_oracle init "$MX_WORK/cluster.json" || nfc_die "oracle init"

	# Namespaces as the e2e suite labels them.
	for ns in $MX_NAMESPACES; do
		printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    ns: %s\n---\n' "$ns" "$ns"
	done >"$MX_WORK/namespaces.yaml"
	mx_do apply "$MX_WORK/namespaces.yaml" || nfc_die "apply namespaces"

	if [ $MX_HAVE_PODS = 1 ]; then
		# Every pod declares named ports (for the named-port scenarios).
		for ns in $MX_NAMESPACES; do
			for p in $MX_PODS; do
				cat <<EOP
apiVersion: v1
kind: Pod
metadata:
  name: $p
  namespace: $ns
  labels:
    pod: $p
spec:
  containers:
  - name: probe
    image: probe
    ports:
    - {name: serve-80-tcp, containerPort: 80, protocol: TCP}
    - {name: serve-81-tcp, containerPort: 81, protocol: TCP}
    - {name: serve-80-udp, containerPort: 80, protocol: UDP}
    - {name: serve-81-udp, containerPort: 81, protocol: UDP}
---
EOP
			done
		done >"$MX_WORK/pods.yaml"
		mx_do apply "$MX_WORK/pods.yaml" || nfc_die "apply pods"
	fi
	mx_oracle labels >"$MX_WORK/labels.baseline"
}

# netfencectl VERB ARGS, then the same change in the model. Prints the CLI's output.
mx_do() {
	local verb=$1 out rc
	shift
	case $verb in
	apply)
		local f t fargs=() files=()
		for f in "$@"; do
			t=$(mx__template "$f") || nfc_die "template $f"
			files+=("$t")
			fargs+=(-f "$t")
		done
		set -- "${files[@]}"
		out=$(nfc_ctl apply "${fargs[@]}" 2>&1)
		rc=$?
		;;
	*)
		out=$(nfc_ctl "$verb" "$@" 2>&1)
		rc=$?
		;;
	esac
	[ -n "$out" ] && printf '  netfencectl: %s\n' "${out//$'\n'/$'\n'  netfencectl: }"
	if [ $rc != 0 ]; then
		nfc_check "netfencectl $verb $*" false
		return 1
	fi
	mx_oracle "$verb" "$@" || nfc_die "oracle $verb $*"
}

# Scenario YAML may name addresses: @IP4:x-b@ / @IP6:x-b@ (pod b of
# namespace x), @EXT4@ / @EXT6@. Prints the path of the substituted copy.
mx__template() {
	local f=$1 t expr=() key ip
	t=$MX_WORK/tpl/$(basename "$(dirname "$1")")-$(basename "$1")
	mkdir -p "$MX_WORK/tpl"
	for ip in "$NFC_DIR"/pods/*.ip4; do
		key=$(basename "$ip" .ip4)
		expr+=(-e "s|@IP4:$key@|$(nfc_ip "$key" 4)|g" -e "s|@IP6:$key@|$(nfc_ip "$key" 6)|g")
	done
	sed "${expr[@]}" -e "s|@EXT4@|$NFC_EXT4|g" -e "s|@EXT6@|$NFC_EXT6|g" "$f" >"$t" || return 1
	if grep -q '@[A-Z0-9]*[:@]' "$t"; then
		echo "matrix: unknown placeholder in $f: $(grep -o '@[^@ ]*@' "$t" | head -1)" >&2
		return 1
	fi
	echo "$t"
}

# Run every probe of the oracle's list: one `ip netns exec` per source pod,
# all of that pod's probes in parallel, all pods at once.
# mx__run_probes LIST TIMEOUT OUT  (LIST: SRC DST PROTO PORT FAMILY ADDR ...)
mx__run_probes() {
	local list=$1 timeout=$2 out=$3 src ns
	local dir=$MX_WORK/run.$MX_STEP.$RANDOM
	mkdir -p "$dir"
	awk -v probe="$NFC_PROBE" -v t="$timeout" -v dir="$dir" '{
		f = dir "/" $1 ".sh"
		if (!(f in seen)) { seen[f] = 1; print "#!/bin/bash" > f }
		printf "{ if r=$(%s connect %s %s %s %s 2>&1 >/dev/null); then echo \"%s %s %s %s %s ok\"; else r=${r##*: }; echo \"%s %s %s %s %s fail ${r:-failed}\"; fi; } &\n",
			probe, $3, $6, $4, t, $1, $2, $3, $4, $5, $1, $2, $3, $4, $5 >> f
	} END { for (f in seen) print "wait" >> f }' "$list"
	local pids=()
	# shellcheck disable=SC2013 # one word a line
	for src in $(awk '{print $1}' "$list" | sort -u); do
		ns=$(nfc_netns "$src")
		nfc__nsexec "$ns" bash "$dir/$src.sh" >"$dir/$src.out" 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
	cat "$dir"/*.out >"$out"
	rm -rf "$dir"
}

mx__verdict() {
	[ "$1" = 0 ] && return 0
	echo "$2 mismatching cell(s), see the MISMATCH lines above"
	return 1
}

MX_FAILED=()
mx_probe() {
	local title=$1 exp obs i t0 rc
	MX_STEP=$((MX_STEP + 1))
	exp=$MX_WORK/expected.$MX_STEP obs=$MX_WORK/observed.$MX_STEP
	t0=$EPOCHREALTIME
	mx_oracle expect >"$exp" || nfc_die "oracle expect"
	mx__run_probes "$exp" "$MX_TIMEOUT" "$obs"
	# A probe that should connect and did not gets MX_RETRIES more tries (a
	# lost first packet is not a verdict); a connection is always a verdict.
	for i in $(seq "$MX_RETRIES"); do
		awk 'NR == FNR { if ($7 == "allow") want[$1" "$2" "$3" "$4" "$5] = $0; next }
			$6 != "ok" && (($1" "$2" "$3" "$4" "$5) in want) { print want[$1" "$2" "$3" "$4" "$5] }' \
			"$exp" "$obs" >"$obs.retry"
		[ -s "$obs.retry" ] || break
		echo "  re-probing $(wc -l <"$obs.retry") cell(s) that should connect (try $((i + 1)))"
		mx__run_probes "$obs.retry" "$MX_RETRY_TIMEOUT" "$obs.again"
		awk 'NR == FNR { k = $1" "$2" "$3" "$4" "$5; if ($6 == "ok") again[k] = $0; next }
			{ k = $1" "$2" "$3" "$4" "$5; print ((k in again) ? again[k] : $0) }' \
			"$obs.again" "$obs" >"$obs.new"
		mv "$obs.new" "$obs"
	done
	python3 "$MX_DIR/table.py" "$exp" "$obs" "$title" >"$MX_WORK/table.$MX_STEP"
	rc=$?
	cat "$MX_WORK/table.$MX_STEP"
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "  (%.1fs)\n", b - a }'
	if [ $rc != 0 ] && [ "${MX_DUMP:-0}" = 1 ]; then
		echo "-- netfencectl show (MX_DUMP=1)"
		nfc_ctl show
	fi
	nfc_check "$title: $(wc -l <"$exp") probes match the oracle" \
		mx__verdict "$rc" "$(grep -c '^MISMATCH ' "$MX_WORK/table.$MX_STEP")"
	[ $rc = 0 ] || MX_FAILED+=("$title")
}

# Delete every policy (netfence and model); the labels must be the baseline again.
mx_reset() {
	local ns name
	while read -r ns name; do
		mx_do delete networkpolicy "$name" -n "$ns" >/dev/null
	done < <(mx_oracle policies)
	mx_oracle labels >"$MX_WORK/labels.now"
	cmp -s "$MX_WORK/labels.baseline" "$MX_WORK/labels.now" ||
		nfc_die "a scenario left labels changed: $(diff "$MX_WORK/labels.baseline" "$MX_WORK/labels.now")"
}

# A scenario directory: its README's first line is the title; `steps` lists
# what to do (default: apply every *.yaml, in name order, then probe).
mx_scenario() {
	local dir=$1 name title line verb
	name=$(basename "$dir")
	title=$(head -1 "$dir/README" 2>/dev/null)
	echo
	echo "=== scenario $name${title:+: $title}"
	if [ -f "$dir/requires" ]; then
		local r
		# shellcheck disable=SC2013 # words
		for r in $(cat "$dir/requires"); do
			case $r in
			label) [ $MX_HAVE_LABEL = 1 ] && continue ;;
			pods) [ $MX_HAVE_PODS = 1 ] && continue ;;
			esac
			echo "SKIP  $name: netfencectl lacks '$r'"
			MX_SKIPPED="${MX_SKIPPED:-}$name "
			return 0
		done
	fi
	if [ ! -f "$dir/steps" ]; then
		local f files=()
		for f in "$dir"/*.yaml; do files+=("$f"); done
		echo "-- apply ${files[*]##*/}"
		mx_do apply "${files[@]}"
		mx_probe "$name"
	else
		local n=0
		while read -r verb line; do
			case $verb in
			'' | '#'*) continue ;;
			probe)
				n=$((n + 1))
				mx_probe "$name #$n${line:+ ($line)}"
				;;
			apply)
				echo "-- apply $line"
				local f files=()
				for f in $line; do files+=("$dir/$f"); done
				mx_do apply "${files[@]}"
				;;
			*)
				echo "-- netfencectl $verb $line"
				# shellcheck disable=SC2086
				mx_do "$verb" $line
				;;
			esac
		done <"$dir/steps"
	fi
	mx_reset
}
