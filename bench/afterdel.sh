#!/bin/bash
# bench/afterdel.sh: is the veth deletion that follows netfence's DEL in
# the chain (bridge's DEL: libcni deletes in reverse order) slower right
# after it than a little later?
#
#   sudo bench/afterdel.sh [PODS [ROUNDS [GAP_MS]]]       (500 40 100)
#
# Builds the bench topology (bench/lib.sh) with PODS pods and 100
# policies; then ROUNDS rounds, each of two modes in a random order:
# attach the measured pod (cnitool add: bridge + host-local + netfence),
# run netfence's DEL alone on it (the plugin, with its prevResult), then,
# at once ("now") or GAP_MS later ("later"), delete the pod's interface as
# bridge's DEL does (`ip link del eth0` in the pod's netns, which takes
# the host's veth with it), timed by nfb_time; then `cnitool del` for the
# rest. The netfence DEL's own time is reported too. Prints the median
# and p90 of each. A difference between "now" and "later" is kernel work
# that netfence's transaction left behind (deferred destruction, RCU
# callbacks) and the deletion waits for.
set -u
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh
pods=${1:-500} rounds=${2:-40} gap=${3:-100}
nfb_setup
nfb_pod_netns m-nf
nfb_fill "$pods" 100
nfb_rejudge_wait
args=$(nfb_pod_args ns0 bench-nf app:bench)
st=$NFB_DIR/state/state.json
for ((r = 1; r <= rounds; r++)); do
	for mode in $(shuf -e now later); do
		# shellcheck disable=SC2046
		nfb_in node env $(nfb_cni_env bin) CNI_ARGS="$args" "$NFB_CNITOOL" add nfb-nf "/var/run/netns/$NFB_PFX-m-nf" \
			>"$NFB_DIR/res.json" 2>>"$NFB_DIR/log/ad.err" || nfb_die "cnitool add: $(tail -3 "$NFB_DIR/log/ad.err")"
		cid=$(jq -r '.pods[] | select(.name == "bench-nf") | .containerID' "$st")
		jq -nc --slurpfile r "$NFB_DIR/res.json" --arg s "$st" \
			'{cniVersion: "1.0.0", name: "nfb-nf", type: "netfence", stateFile: $s, prevResult: $r[0]}' >"$NFB_DIR/conf.json"
		sleep 0.1
		nfb_in node env CNI_COMMAND=DEL CNI_CONTAINERID="$cid" CNI_NETNS="/var/run/netns/$NFB_PFX-m-nf" CNI_IFNAME=eth0 \
			CNI_PATH=/nonexistent CNI_ARGS="$args" "$NFB_TIME" -o "$NFB_DIR/t.tsv" -l "netfence DEL ($mode)" -- \
			"$NFB_PLUGIN" <"$NFB_DIR/conf.json" >/dev/null 2>>"$NFB_DIR/log/ad.err" || nfb_die "netfence DEL"
		[ "$mode" = later ] && sleep "$(awk -v g="$gap" 'BEGIN { print g / 1000 }')"
		"$NFB_TIME" -o "$NFB_DIR/t.tsv" -l "$mode" -- ip -n "$NFB_PFX-m-nf" link del eth0 || nfb_die "ip link del"
		# shellcheck disable=SC2046
		nfb_in node env $(nfb_cni_env bin) CNI_ARGS="$args" "$NFB_CNITOOL" del nfb-nf "/var/run/netns/$NFB_PFX-m-nf" \
			>/dev/null 2>>"$NFB_DIR/log/ad.err" || nfb_die "cnitool del: $(tail -3 "$NFB_DIR/log/ad.err")"
		# the DEL's child (its conntrack cleanup, a second later) ends first
		for ((w = 0; w < 50; w++)); do
			compgen -G "$st.conntrack-*" >/dev/null || pgrep -x netfence >/dev/null || break
			sleep 0.1
		done
	done
done
echo "veth deletion after netfence's DEL, $pods pods x 100 policies, $rounds rounds, later = ${gap} ms after (ms):"
nfb_ab_summary "$NFB_DIR/t.tsv" now later "netfence DEL (now)" "netfence DEL (later)"
