#!/bin/sh
# Sets up and runs every netfence test (as root, on Debian 12):
#   unit tests under ASan+UBSan, a clang -Werror build, and the conformance
#   suite (real CNI plugins in private network namespaces).
set -eu
cd "$(dirname "$0")"
scripts/deps.sh
make
make lint
make check
make fuzz FUZZ_SECONDS=20
make bench-smoke
make conformance
