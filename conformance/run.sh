#!/bin/bash
# Runs every conformance scenario (smoke_topology.sh first, then test_*.sh),
# each in its own process, and prints one result line per script and a final
# "N passed, M failed" (counting scripts). Needs root; builds nothing:
# `make conformance` builds bin/, cnitool and probe, then calls this.
#   conformance/run.sh [SCRIPT...]    (default: all)
set -u
cd "$(dirname "$0")" || exit 2
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root" >&2; exit 2; }
for f in cnitool/cnitool probe/probe; do
	[ -x "$f" ] || { echo "run.sh: conformance/$f missing: run 'make conformance'" >&2; exit 2; }
done

if [ $# -gt 0 ]; then
	scripts=("$@")
else
	scripts=(nft_apply_test.sh smoke_topology.sh)
	for f in test_*.sh; do [ -e "$f" ] && scripts+=("$f"); done
	scripts+=(demo_np14.sh) # the README's demo must keep printing the expected verdicts
fi

pass=0 fail=0 results=()
for s in "${scripts[@]}"; do
	s=${s#conformance/}
	echo "=== $s"
	out=$(mktemp)
	start=$(date +%s)
	# exec keeps the pid: the script names its netns and temp dir after it.
	bash -c 'echo $$ >"$1"; exec bash "./$2"' run "$out.pid" "$s" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	pid=$(cat "$out.pid")
	rm -f "$out.pid"
	secs=$(($(date +%s) - start))
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
	rm -f "$out"
	# Whatever the script created is named after its pid: nothing may be left.
	left=$(ip netns list | awk -v p="nfc-$pid-" 'index($1, p) == 1 {print $1}' | tr '\n' ' ')
	for d in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -q "/tmp/nfc\.$pid\." && left="$left pid:${d#/proc/}"
	done
	compgen -G "/tmp/nfc.$pid.*" >/dev/null && left="$left $(echo /tmp/nfc."$pid".*)"
	if [ -n "${left// /}" ]; then
		echo "run.sh: $s left behind: $left" >&2
		rc=1
	fi
	if [ "$rc" = 0 ]; then
		pass=$((pass + 1))
		results+=("PASS $s (${summary:-no summary}, ${secs}s)")
	else
		fail=$((fail + 1))
		results+=("FAIL $s (exit $rc, ${summary:-no summary}, ${secs}s)")
	fi
done

echo "=== results"
printf '%s\n' "${results[@]}"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
