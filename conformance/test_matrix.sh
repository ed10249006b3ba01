#!/bin/bash
# The NetworkPolicy EGRESS truth-table suite (as the Kubernetes e2e netpol
# tests and Cyclonus do it): namespaces x, y, z with pods a, b, c each, plus an
# external host; every scenario of conformance/matrix/scenarios/ is applied
# with netfencectl and each (source pod) x (destination pod or external) x
# {tcp/80, tcp/81, udp/80, udp/81} x {IPv4, IPv6} is probed (720 probes) and
# compared with conformance/matrix/oracle.py, an independent model of the
# Kubernetes egress semantics. Ingress rules are not enforced by netfence
# yet: the oracle ignores them (no scenario depends on them).
#   conformance/test_matrix.sh [SCENARIO...]    (default: all, in name order)
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/matrix/matrix.sh"

t0=$(date +%s)
nfc_check "the oracle's own hand-checked cases (matrix/oracle_test.py)" python3 "$NFC_CONF_DIR/matrix/oracle_test.py"
NFC_PLUGIN_NETFENCE=1
mx_setup
echo "setup: $(($(date +%s) - t0))s"

if python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)' 2>/dev/null; then
	echo "SCTP: kernel has SCTP sockets, but the probe tool speaks TCP/UDP only: SCTP verdicts not probed"
else
	echo "SCTP: skipped, kernel has no SCTP sockets (SCTP policies are still applied: they must not change TCP/UDP verdicts)"
fi

echo "tables: rows = sources, columns = destinations (ext = the external host);" \
	"\".\" connected, \"X\" blocked, \"-\" loopback (never leaves the pod: ignored, as in the e2e suite)," \
	"\"!\" a cell that differs from the oracle"
echo
echo "=== baseline: no policy, everything connects"
mx_probe baseline

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("$MX_DIR"/scenarios/*/)
for s in "${scenarios[@]}"; do
	s=${s%/}
	[ -d "$s" ] || s=$MX_DIR/scenarios/$s
	[ -d "$s" ] || nfc_die "no scenario $s"
	mx_scenario "$s"
done

echo
echo "=== every policy deleted: everything connects again"
mx_probe "all deleted"
if [ ${#MX_FAILED[@]} -gt 0 ]; then
	echo "steps with mismatches:"
	printf '  %s\n' "${MX_FAILED[@]}"
fi
[ -n "${MX_SKIPPED:-}" ] && echo "skipped (netfencectl lacks a verb): $MX_SKIPPED"
echo "total: $(($(date +%s) - t0))s"
nfc_summary
