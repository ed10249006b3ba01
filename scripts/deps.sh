#!/bin/sh
# Installs the Debian 12 packages netfence needs to build, test and demo.
set -eu
PKGS="build-essential pkg-config libjansson-dev libmnl-dev libnftnl-dev libyaml-dev libxxhash-dev libcmocka-dev
      nftables iproute2 containernetworking-plugins golang-go golang-github-appc-cni-dev
      busybox-static dnsmasq-base jq valgrind clang libclang-rt-14-dev python3 python3-yaml
      containerd runc iperf3 gnuplot-nox iptables time strace procps"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq $missing >/dev/null
fi
