#!/usr/bin/env bash
# The whole test suite: installs what the tests need (scripts/setup.sh), then runs every
# test, including those that drive the real clients (GDAL, the GeoPackage validator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets --locked --no-fail-fast 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# The both-store matrix: the suites whose behaviour is the same on either store run again
# on the PostGIS store, each test's store copied into a throwaway PostgreSQL cluster
# (tests/common/pgmirror.rs). Not here: the GeoPackage file's own faults (faults.rs; the
# database's are in postgis.rs) and the suites that never start a server on a store.
echo "== the same suites on the PostGIS store =="
NORDGEO_TEST_STORE=postgis cargo test --locked --no-fail-fast \
  --test features --test cql2 --test ogc --test tiles --test edit --test maintainers \
  --test owners --test downloads --test hostile --test consistency --test server \
  --test portal 2>&1 | tee -a "$log"
pg_rc=${PIPESTATUS[0]}
[ "$rc" -ne 0 ] || rc=$pg_rc
set -e
# One closing line over all test binaries (criterion's smoke run prints its own last).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
# The failures again at the very end, where a CI log's tail shows them.
grep -E -A6 "panicked at" "$log" | cut -c1-400 | head -80 || true
grep -E '^test .* FAILED$|^error: test failed|^error: [0-9]+ targets? failed|^    `--' "$log" || true
exit "$rc"
