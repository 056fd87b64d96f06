#!/usr/bin/env bash
# The whole test suite: installs what the tests need (scripts/setup.sh), then runs every
# test, including those that drive the real clients (GDAL, the GeoPackage validator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets --locked 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line over all test binaries (criterion's smoke run prints its own last).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$rc"
