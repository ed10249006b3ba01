#!/bin/sh
# Installs netfence on a node:
#   ./install.sh [--cni-bin-dir DIR] [--prefix DIR] [--conflist FILE] [--state FILE]
# builds if needed, installs the plugin into the CNI bin dir (default
# /opt/cni/bin) and netfencectl into PREFIX/bin (default /usr/local), and with
# --conflist chains netfence as the last plugin of that conflist.
set -eu
cd "$(dirname "$0")"
CNI_BIN_DIR=/opt/cni/bin
PREFIX=/usr/local
CONFLIST=
STATE=
while [ $# -gt 0 ]; do
	case "$1" in
	--cni-bin-dir) CNI_BIN_DIR=$2; shift 2 ;;
	--prefix) PREFIX=$2; shift 2 ;;
	--conflist) CONFLIST=$2; shift 2 ;;
	--state) STATE=$2; shift 2 ;;
	-h|--help) sed -n '2,6p' "$0"; exit 0 ;;
	*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x bin/netfence ] && [ -x bin/netfencectl ] || make
install -d "$CNI_BIN_DIR" "$PREFIX/bin"
install -m 0755 bin/netfence "$CNI_BIN_DIR/netfence"
install -m 0755 bin/netfencectl "$PREFIX/bin/netfencectl"
echo "installed $CNI_BIN_DIR/netfence and $PREFIX/bin/netfencectl"
if [ -n "$CONFLIST" ]; then
	if [ -n "$STATE" ]; then
		bin/netfencectl --state "$STATE" conflist-add "$CONFLIST"
	else
		bin/netfencectl conflist-add "$CONFLIST"
	fi
fi
