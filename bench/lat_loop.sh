#!/bin/bash
# bench/lat_loop.sh: the interleaved ADD/DEL rounds of one cell. Runs inside
# the node netns (bench/run.sh starts it with `ip netns exec`), so that the
# only process timed is cnitool itself (with the plugins it runs).
#
#   lat_loop.sh OUT CELL ROUNDS MEMROUNDS PFX [FIRST]
#
# Each round ADDs the measured pod of every variant (base, nf, fw, tun; or
# those of NFB_VARIANTS) in a random order, then DELs them in another
# random order; each cnitool call is one line
# "CELL ADD|DEL VARIANT ROUND<TAB>ms<TAB>maxrss_kb<TAB>status" in OUT
# (nfb_time); rounds are numbered from FIRST (1). Then MEMROUNDS ADD+DEL of
# the nf pod with the plugin under nfb_time (bin-mem), for its peak RSS
# (log/plugin-rusage.tsv, the label is $NFB_CELL, which libcni passes on to
# the plugin's environment).
# Env: NFB_DIR, NFB_TIME, NFB_CNITOOL; NFB_EACH=1: the rounds run every
# plugin under nfb_time (bin-each), each call a line in log/each.tsv;
# NFB_MARK_FD=N: each DEL is bracketed by the lines "nfb DEL VARIANT ROUND"
# and "nfb END" written to descriptor N (bench/delwait.sh: a trace_marker).
set -u
out=$1 cell=$2 rounds=$3 memrounds=$4 pfx=$5 first=${6:-1}
read -r -a variants <<<"${NFB_VARIANTS:-base nf fw tun}"
cni() { # BIN CMD VARIANT LABEL
	local args="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns0;K8S_POD_NAME=bench-$3;K8S_POD_LABELS=app:bench"
	NFB_CELL=$4 NETCONFPATH=$NFB_DIR/net.d CNI_PATH=$NFB_DIR/$1 CNI_CACHE_DIR=$NFB_DIR/cache CNI_IFNAME=eth0 CNI_ARGS=$args \
		"$NFB_TIME" -o "$out" -l "$4" -- "$NFB_CNITOOL" "$2" "nfb-$3" "/var/run/netns/$pfx-m-$3" \
		>/dev/null 2>>"$NFB_DIR/log/lat.err"
}
fails=0
bin=bin
[ -n "${NFB_EACH:-}" ] && bin="bin-each" # every plugin timed too (log/each.tsv)
last=$((first + rounds))
for ((r = first; r < last; r++)); do
	for v in $(shuf -e "${variants[@]}"); do cni "$bin" add "$v" "$cell ADD $v $r" || fails=$((fails + 1)); done
	for v in $(shuf -e "${variants[@]}"); do
		[ -z "${NFB_MARK_FD:-}" ] || echo "nfb DEL $v $r" >&"$NFB_MARK_FD"
		cni "$bin" del "$v" "$cell DEL $v $r" || fails=$((fails + 1))
		[ -z "${NFB_MARK_FD:-}" ] || echo "nfb END" >&"$NFB_MARK_FD"
	done
done
for ((r = 1; r <= memrounds; r++)); do
	cni bin-mem add nf "$cell MEMADD nf $r" || fails=$((fails + 1))
	cni bin-mem del nf "$cell MEMDEL nf $r" || fails=$((fails + 1))
done
[ "$fails" = 0 ] || { echo "lat_loop: $fails cnitool calls failed (see $NFB_DIR/log/lat.err)" >&2; exit 1; }
