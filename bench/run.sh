#!/bin/bash
# bench/run.sh: netfence's costs, measured against baselines run side by side.
#
#   sudo bench/run.sh [--smoke] [--out DIR] [--no-profile] [--no-dataplane]
#
# `make bench` / `make bench-smoke` build what it needs and call it. Every
# figure is a ratio or a difference against a baseline measured in the same
# invocation, interleaved with it (random order in each round). Phases:
#   1. latency   ADD/DEL of a measured pod through cnitool on three networks
#                of one node netns: bridge+host-local (base), + netfence (nf),
#                + firewall (fw, iptables backend), + tuning (tun, a trivial
#                chained plugin: what any plugin costs); at every (pods, policies)
#                cell; also the plugin's peak RSS and the ruleset size
#   2. policy    netfencectl apply / delete: one policy selecting 100 pods
#                (sel100), 1,000 policies at once (bulk), a policy selecting
#                nothing (noop, the baseline); probes verify enforcement
#   3. dataplane iperf3 throughput and new-connection rate pod -> external
#                host: no filtering, netfence with N ipBlock peers, 1,000
#                linear nft rules
#   4. profile   (full mode) callgrind on the plugin's ADD at the largest cell
# Results: DIR (default bench/results/<date>[-smoke]): raw *.tsv, report.md,
# *.png. Smoke mode is small and short; it checks the benches still work and
# compares no timing against any threshold.
# Sizes can be overridden: NFB_PODS="1 100 500" NFB_SIZES="10 100 1000"
# NFB_ROUNDS=30 NFB_PC_ROUNDS=30 NFB_MEM_ROUNDS=3 NFB_PEERS="10 1000 10000"
# NFB_DP_REPS=5 NFB_DP_SECS=3. NFB_BIN_DIR=DIR measures DIR/netfence and
# DIR/netfencectl (say, another commit's build) instead of bin/.
# NFB_NO_IPV6=1: IPv6 off in every pod netns (bench/README.md, 1b).
set -u
smoke=0 out="" profile=1 dataplane=1
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1 ;;
	--out) out=$2; shift ;;
	--no-profile) profile=0 ;;
	--no-dataplane) dataplane=0 ;;
	*) echo "usage: bench/run.sh [--smoke] [--out DIR] [--no-profile] [--no-dataplane]" >&2; exit 2 ;;
	esac
	shift
done
cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh

if [ $smoke = 1 ]; then
	PODS=${NFB_PODS:-"1 10"} SIZES=${NFB_SIZES:-"10 100"} ROUNDS=${NFB_ROUNDS:-3} PC_ROUNDS=${NFB_PC_ROUNDS:-3}
	MEM_ROUNDS=${NFB_MEM_ROUNDS:-1} PEERS=${NFB_PEERS:-"10 100"} DP_REPS=${NFB_DP_REPS:-3} DP_SECS=${NFB_DP_SECS:-1}
	profile=0
else
	PODS=${NFB_PODS:-"1 100 500"} SIZES=${NFB_SIZES:-"10 100 1000"} ROUNDS=${NFB_ROUNDS:-30}
	PC_ROUNDS=${NFB_PC_ROUNDS:-30} MEM_ROUNDS=${NFB_MEM_ROUNDS:-3} PEERS=${NFB_PEERS:-"10 1000 10000"}
	DP_REPS=${NFB_DP_REPS:-5} DP_SECS=${NFB_DP_SECS:-3}
fi
read -r -a pods_a <<<"$PODS"
read -r -a sizes_a <<<"$SIZES"
smin=${sizes_a[0]} smax=${sizes_a[-1]} pmax=${pods_a[-1]}
[ "$pmax" -ge 2 ] || nfb_die "the largest pod count must be >= 2 (the canaries)"
[ -n "$out" ] || out=bench/results/$(date +%Y%m%d-%H%M%S)$([ $smoke = 1 ] && echo -smoke)
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
t_start=$(date +%s)
say() { printf '[%4ds] %s\n' $(($(date +%s) - t_start)) "$*"; }

nfb_setup
export NFB_TIME NFB_CNITOOL NFB_NETFENCECTL NFB_PROBE NFB_PFX
cat >"$out/config.txt" <<EOF
mode=$([ $smoke = 1 ] && echo smoke || echo full)
pods=$PODS
policies=$SIZES
rounds=$ROUNDS
policy_change_rounds=$PC_ROUNDS
memory_rounds=$MEM_ROUNDS
dataplane_peers=$PEERS
dataplane_reps=$DP_REPS
dataplane_secs=$DP_SECS
pods_ipv6=$([ -n "${NFB_NO_IPV6:-}" ] && echo off || echo on)
EOF
python3 bench/gen.py "$NFB_DIR/gen" --sizes "${SIZES// /,}" --peers "${PEERS// /,}" || nfb_die "gen.py"
for v in base nf fw tun; do nfb_pod_netns "m-$v"; done
nfb_ctl apply -f "$NFB_DIR/gen/namespaces.json" >/dev/null || nfb_die "apply namespaces"
nfb_ctl apply -f "$NFB_DIR/gen/policies-$smin.json" >/dev/null || nfb_die "apply policies-$smin"

# Size of the netfence tables in the kernel: bytes of `nft list`, rules,
# sets, set elements (verdict map entries included), chains.
ruleset_stats() {
	local bytes j
	nfb_rejudge_wait
	bytes=$(nfb_netfence_tables | wc -c)
	j=$(nfb_netfence_tables -j)
	jq -rs --arg b "$bytes" '[.[].nftables[]] as $o |
		[$b, ([$o[] | select(.rule)] | length), ([$o[] | select(.set or .map)] | length),
		 ([$o[] | (.set // .map // empty) | (.elem // []) | length] | add // 0),
		 ([$o[] | select(.chain)] | length)] | @tsv' <<<"$j"
}

# ---- 1. latency ----------------------------------------------------------
say "latency: pods {$PODS} x policies {$SIZES}, $ROUNDS rounds of ADD+DEL x {base, nf, fw, tun}"
printf 'pods\tpolicies\tbytes\trules\tsets\telements\tchains\n' >"$out/ruleset.tsv"
for np in "${pods_a[@]}"; do
	say "  attaching pods up to $np"
	nfb_pods_grow "$np"
	for s in "${sizes_a[@]}"; do
		nfb_ctl apply -f "$NFB_DIR/gen/policies-$s.json" >/dev/null || nfb_die "apply policies-$s"
		printf '%s\t%s\t%s\n' "$np" "$s" "$(ruleset_stats)" >>"$out/ruleset.tsv"
		say "  cell pods=$np policies=$s"
		nfb_in node bash bench/lat_loop.sh "$out/latency.tsv" "p$np s$s" "$ROUNDS" "$MEM_ROUNDS" "$NFB_PFX" ||
			nfb_die "latency rounds failed: $(tail -5 "$NFB_DIR/log/lat.err")"
	done
	[ "$smax" = "$smin" ] || nfb_ctl delete -f "$NFB_DIR/gen/del-$smax.json" >/dev/null || nfb_die "delete back"
done
cp "$NFB_DIR/log/plugin-rusage.tsv" "$out/plugin-rusage.tsv"
cp "$NFB_DIR/log/grow.tsv" "$out/grow.tsv"
cp "$NFB_DIR/log/lat.err" "$out/lat.err" 2>/dev/null
[ -z "${NFB_EACH:-}" ] || cp "$NFB_DIR/log/each.tsv" "$out/each.tsv"

# ---- 2. policy change ----------------------------------------------------
say "policy change at $pmax pods: verify, then $PC_ROUNDS rounds of {noop, sel100, bulk} at $smin policies"
nfb_in p0 "$NFB_PROBE" connect tcp "$NFB_EXT4" 80 2000 >/dev/null || nfb_die "canary0 cannot reach the external host"
nfb_in p1 "$NFB_PROBE" connect tcp "$NFB_EXT4" 80 2000 >/dev/null || nfb_die "canary1 cannot reach the external host"
verify_rounds=1
[ $smoke = 1 ] && verify_rounds=$PC_ROUNDS
nfb_in node bash bench/pc_loop.sh "$out/policy-verify.tsv" "p$pmax s$smin" "$verify_rounds" 1 noop sel100 bulk ||
	nfb_die "policy change not enforced right after apply returned"
if [ $smoke = 0 ]; then
	nfb_in node bash bench/pc_loop.sh "$out/policy.tsv" "p$pmax s$smin" "$PC_ROUNDS" 0 noop sel100 bulk ||
		nfb_die "policy change rounds failed"
else
	cp "$out/policy-verify.tsv" "$out/policy.tsv"
fi
nfb_ctl apply -f "$NFB_DIR/gen/policies-$smax.json" >/dev/null || nfb_die "apply policies-$smax"
say "policy change at $pmax pods, $smax policies: $PC_ROUNDS rounds of {noop, sel100}"
nfb_in node bash bench/pc_loop.sh "$out/policy.tsv" "p$pmax s$smax" "$PC_ROUNDS" "$smoke" noop sel100 ||
	nfb_die "policy change rounds failed"

# ---- 3. dataplane --------------------------------------------------------
if [ $dataplane = 1 ]; then
	say "dataplane: configs, then $DP_REPS reps x ${DP_SECS}s of iperf3 + connrate per config"
	nfb_pod dp nfb-nf "$(nfb_pod_args ns0 dp app:dp)"
	reset="table inet netfence
delete table inet netfence
table inet nfb_linear
delete table inet nfb_linear
table inet nfb_ct
delete table inet nfb_ct"
	echo "$reset" >"$NFB_DIR/dp/none.nft"
	# no policy, but connection tracking on in the node netns, as any
	# stateful filter (netfence, the firewall plugin) or NAT turns it on:
	# what conntrack alone costs
	{
		echo "$reset"
		echo "table inet nfb_ct {"
		echo "  chain forward {"
		echo "    type filter hook forward priority filter; policy accept;"
		echo "    ct state established,related accept"
		echo "  }"
		echo "}"
	} >"$NFB_DIR/dp/conntrack.nft"
	configs=(none conntrack)
	for n in $PEERS; do
		nfb_ctl apply -f "$NFB_DIR/gen/dp-$n.json" >/dev/null || nfb_die "apply dp-$n"
		nfb_rejudge_wait
		{
			echo "$reset"
			nfb_netfence_tables
		} >"$NFB_DIR/dp/nf$n.nft"
		printf 'dp-peers %s\t%s\n' "$n" "$(ruleset_stats)" >>"$out/ruleset-dp.tsv"
		configs+=("nf$n")
	done
	{
		echo "$reset"
		echo "table inet nfb_linear {"
		echo "  chain forward {"
		echo "    type filter hook forward priority filter; policy accept;"
		for ((j = 0; j < 999; j++)); do echo "    ip daddr 10.200.$((j / 250)).$((1 + j % 250)) accept"; done
		echo "    ip daddr $NFB_EXT4 accept"
		echo "  }"
		echo "}"
	} >"$NFB_DIR/dp/linear1000.nft"
	configs+=(linear1000)
	# every configuration must let the dp pod reach the external host
	for c in "${configs[@]}"; do
		{ nfb_netdev_reset; cat "$NFB_DIR/dp/$c.nft"; } | nfb_in node nft -f - || nfb_die "loading $c.nft"
		nfb_in dp "$NFB_PROBE" connect tcp "$NFB_EXT4" 80 2000 >/dev/null || nfb_die "dp pod blocked under $c"
	done
	printf 'config\trep\tgbps\tconn_per_s\tconn_failed\n' >"$out/dataplane.tsv"
	for ((r = 1; r <= DP_REPS; r++)); do
		for c in $(shuf -e "${configs[@]}"); do
			{ nfb_netdev_reset; cat "$NFB_DIR/dp/$c.nft"; } | nfb_in node nft -f - || nfb_die "loading $c.nft"
			sleep 0.2
			bps=$(nfb_in dp timeout $((DP_SECS + 10)) iperf3 -c "$NFB_EXT4" -p 5201 -t "$DP_SECS" -J 2>/dev/null |
				jq -r '.end.sum_received.bits_per_second // empty')
			[ -n "$bps" ] || nfb_die "iperf3 failed under $c"
			read -r cps _ bad < <(nfb_in dp timeout $((DP_SECS + 10)) "$NFB_CONNRATE" connect "$NFB_EXT4" 5301 "$DP_SECS")
			[ -n "${cps:-}" ] || nfb_die "connrate failed under $c"
			printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$r" "$(awk -v b="$bps" 'BEGIN{printf "%.3f", b/1e9}')" "$cps" "$bad" >>"$out/dataplane.tsv"
		done
		say "  rep $r/$DP_REPS done"
	done
	{ nfb_netdev_reset; cat "$NFB_DIR/dp/none.nft"; } | nfb_in node nft -f -
	nfb_ctl delete -f "$NFB_DIR/gen/dp-${PEERS##* }.json" >/dev/null
	nfb_ctl sync >/dev/null || nfb_die "netfencectl sync after the dataplane phase"
fi

# ---- 4. profile ----------------------------------------------------------
if [ $profile = 1 ] && command -v valgrind >/dev/null; then
	say "profile: callgrind on the plugin's ADD and DEL at $pmax pods x $smax policies"
	# shellcheck disable=SC2046
	nfb_in node env $(nfb_cni_env bin-prof) CNI_ARGS="$(nfb_pod_args ns0 bench-nf app:bench)" \
		"$NFB_CNITOOL" add nfb-nf "/var/run/netns/$NFB_PFX-m-nf" >/dev/null 2>>"$NFB_DIR/log/prof.err" ||
		nfb_die "profiled ADD failed: $(tail -3 "$NFB_DIR/log/prof.err")"
	# shellcheck disable=SC2012 # our own file names
	f=$(ls -t "$NFB_DIR"/log/callgrind.out.* | head -1)
	mv "$f" "$out/callgrind.add.out"
	# shellcheck disable=SC2046
	nfb_in node env $(nfb_cni_env bin-prof) CNI_ARGS="$(nfb_pod_args ns0 bench-nf app:bench)" \
		"$NFB_CNITOOL" del nfb-nf "/var/run/netns/$NFB_PFX-m-nf" >/dev/null 2>>"$NFB_DIR/log/prof.err" ||
		nfb_die "profiled DEL failed"
	# shellcheck disable=SC2012 # our own file names
	f=$(ls -t "$NFB_DIR"/log/callgrind.out.* | head -1)
	mv "$f" "$out/callgrind.del.out"
	for c in add del; do
		callgrind_annotate --auto=no --inclusive=yes "$out/callgrind.$c.out" >"$out/profile-$c-inclusive.txt" 2>/dev/null
		callgrind_annotate --auto=no "$out/callgrind.$c.out" >"$out/profile-$c-self.txt" 2>/dev/null
	done
fi

# ---- report --------------------------------------------------------------
{
	echo "nproc=$(nproc)"
	echo "kernel=$(uname -r)"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
	for p in nftables libnftnl11 libmnl0 containernetworking-plugins iptables iperf3 golang-github-appc-cni-dev valgrind; do
		echo "$p=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)"
	done
	echo "tree=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- enforce netconf plugin 2>/dev/null || echo +dirty)"
	echo "binaries=$NFB_BIN_SRC (netfence md5 $(md5sum <"$NFB_PLUGIN" | cut -c1-12))"
} >"$out/machine.txt"
python3 bench/report.py "$out" >"$out/report.md" || nfb_die "report.py"
if command -v gnuplot >/dev/null; then
	(cd "$out" && gnuplot "$NFB_ROOT/bench/plot.gp") || nfb_die "gnuplot"
fi
say "done: $out/report.md"
cat "$out/report.md"
