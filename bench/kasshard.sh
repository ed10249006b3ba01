#!/bin/bash
# bench/kasshard.sh: the pods' anti-spoofing as one netdev chain per pod
# (netfence's layout) against one chain per shard table hooking all its
# pods' devices, with the (device, address) pairs in a set: what each
# costs the kernel per transaction, and per pod added (docs/performance.md,
# "After 29d6ead", next steps).
#
#   sudo bench/kasshard.sh [PODS [REPS]]      (500 21)
#
# In a scratch network namespace of its own: PODS veths; an inet table
# with a plain set; 32 netdev tables. Per layout, timed by the batch's
# sendmsg (the last of the nft process, under strace -T), median of REPS
# after one untimed:
#   plain   one element into the inet table's set: what any transaction
#           costs (every commit walks every chain of the netns)
#   pod     what adding one more pod's anti-spoofing takes: per pod, a new
#           chain (and its rules) in a shard table; per shard, the device
#           added to the shard's chain and the pod's address to its set
# First the plain element with no netdev chain at all. Layouts:
# "per-pod" PODS chains shaped like netfence's (8 rules), 32 tables;
# "per-shard" 32 chains, each hooking PODS/32 devices, rules `meta iif .
# ip saddr @as4 accept` and the same IPv6 rules. Removes the namespace
# on exit. Needs strace.
set -eu
n=${1:-500} reps=${2:-21}
# shellcheck source=bench/scratch.sh
. "$(dirname "$0")/scratch.sh"
command -v strace >/dev/null || { echo "kasshard.sh: needs strace" >&2; exit 2; }
scratch_setup nfks
total=$((n + 2 * (reps + 1)))
for ((i = 0; i < total; i++)); do echo "link add d$i type veth peer name p$i"; done >"$tmp/links"
ip -n "$ns" -batch "$tmp/links"
for ((i = 0; i < total; i++)); do echo "link set d$i up"; done >"$tmp/up"
ip -n "$ns" -batch "$tmp/up"
v6rules() { # the IPv6 rules both layouts share, but the pod's own address
	echo "    meta protocol ip6 ip6 saddr fe80::/10 meta l4proto ipv6-icmp icmpv6 type 133-136 accept"
	echo "    meta protocol ip6 ip6 saddr fe80::/10 meta l4proto ipv6-icmp icmpv6 type 143 accept"
	echo "    meta protocol ip6 ip6 saddr :: meta l4proto ipv6-icmp icmpv6 type 135 accept"
	echo "    meta protocol ip6 ip6 saddr :: meta l4proto ipv6-icmp icmpv6 type 143 accept"
	echo "    meta protocol ip6 drop"
}
addr4() { echo "10.$(($1 / 62500)).$(($1 / 250 % 250)).$(($1 % 250 + 1))"; }
layout() { # per-pod | per-shard: the ruleset of PODS pods
	local s i
	echo "table inet kx { set plain { type ipv4_addr; }; }"
	for ((s = 0; s < 32; s++)); do
		echo "table netdev as$s {"
		if [ "$1" = per-shard ]; then
			local devs="" elems4="" elems6=""
			for ((i = s; i < n; i += 32)); do
				devs+="${devs:+, }d$i"
				elems4+="${elems4:+, }\"d$i\" . $(addr4 "$i")"
				elems6+="${elems6:+, }\"d$i\" . fd00::$((i + 1))"
			done
			local e4="" e6=""
			[ -z "$elems4" ] || e4="elements = { $elems4 }; "
			[ -z "$elems6" ] || e6="elements = { $elems6 }; "
			echo "  set as4 { type iface_index . ipv4_addr; $e4}"
			echo "  set as6 { type iface_index . ipv6_addr; $e6}"
			echo "  chain as {"
			echo "    type filter hook ingress devices = { ${devs:-d$((n + 2 * reps + 1))} } priority -500; policy accept;"
			echo "    meta protocol ip meta iif . ip saddr @as4 accept"
			echo "    meta protocol ip drop"
			echo "    meta protocol ip6 meta iif . ip6 saddr @as6 accept"
			v6rules
			echo "  }"
		else
			for ((i = s; i < n; i += 32)); do
				echo "  chain as_d$i {"
				echo "    type filter hook ingress device \"d$i\" priority -500; policy accept;"
				echo "    meta protocol ip ip saddr $(addr4 "$i") accept"
				echo "    meta protocol ip drop"
				echo "    meta protocol ip6 ip6 saddr fd00::$((i + 1)) accept"
				v6rules
				echo "  }"
			done
		fi
		echo "}"
	done
}
last_ms() { # the batch's sendmsg of "nft CMD", in microseconds
	nft_batch_us "$ns" "$1" || exit 1
}
pod_cmd() { # LAYOUT DEVICE-NUMBER: the nft command that adds that pod
	local i=$2 s=$(($2 % 32))
	if [ "$1" = per-shard ]; then
		echo "add chain netdev as$s as { type filter hook ingress devices = { d$i } priority -500; }; add element netdev as$s as4 { \"d$i\" . $(addr4 "$i") }; add element netdev as$s as6 { \"d$i\" . fd00::$((i + 1)) }"
	else
		echo "add chain netdev as$s as_d$i { type filter hook ingress device \"d$i\" priority -500; policy accept; }; add rule netdev as$s as_d$i meta protocol ip ip saddr $(addr4 "$i") accept; add rule netdev as$s as_d$i meta protocol ip drop"
	fi
}
# the same transaction with no netdev chain at all
ip netns exec "$ns" nft "add table inet kx; add set inet kx plain { type ipv4_addr; }"
last_ms "add element inet kx plain { 10.255.255.1 }" >/dev/null
none=$(for ((k = 1; k <= reps; k++)); do last_ms "add element inet kx plain { 10.253.0.$k }"; done | median_ms)
echo "no anti-spoofing chains: one plain element $none ms"
for l in per-pod per-shard; do
	ip netns exec "$ns" nft flush ruleset
	layout "$l" >"$tmp/$l.nft"
	ip netns exec "$ns" nft -f "$tmp/$l.nft" || { head -20 "$tmp/$l.nft"; exit 1; }
	chains=$(ip netns exec "$ns" nft list chains | grep -c '^[[:space:]]*chain ')
	last_ms "add element inet kx plain { 10.255.255.1 }" >/dev/null
	plain=$(for ((k = 1; k <= reps; k++)); do last_ms "add element inet kx plain { 10.254.0.$k }"; done | median_ms)
	first=$n
	[ "$l" = per-shard ] && first=$((n + reps + 1))
	last_ms "$(pod_cmd "$l" "$first")" >/dev/null
	pod=$(for ((k = 1; k <= reps; k++)); do last_ms "$(pod_cmd "$l" $((first + k)))"; done | median_ms)
	# the last pod's device is hooked
	d=$((first + reps))
	ip netns exec "$ns" nft list table netdev as$((d % 32)) | grep -q "\bd$d\b" ||
		{ echo "kasshard.sh: $l: d$d is not hooked" >&2; exit 1; }
	echo "$l: pods=$n chains=$chains: one plain element $plain ms; one more pod's anti-spoofing $pod ms (the batch's sendmsg, median of $reps)"
done
