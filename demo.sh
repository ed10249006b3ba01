#!/bin/sh
# Sets up and runs the NP-14 demo on this machine (root, Debian 12): installs
# the packages it needs, builds netfence and the test tools, and acts the
# scenario out in private network namespaces that it removes afterwards.
set -eu
cd "$(dirname "$0")"
scripts/deps.sh
make -s all conformance/cnitool/cnitool conformance/probe/probe
exec conformance/demo_np14.sh
