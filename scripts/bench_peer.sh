#!/usr/bin/env bash
# Side-by-side benchmark against Martin on PostGIS with the shared harness
# (../shared/bench/run_peer.sh, used in place — not copied). Run by hand, not in CI.
#
#   bash scripts/bench_peer.sh     # cold run, wrk with caches filled, wrk with caches off
#   CACHE_MB=64 bash scripts/bench_peer.sh   # another cache size for the cached runs
#   STORE=postgis bash scripts/bench_peer.sh  # nordgeo reads the same PostGIS tables as Martin
#
# Needs the harness's packages (postgresql-15-postgis-3, wrk) and Martin 1.14 built as
# ../shared/bench/README.md says. Results: $PB/results/<timestamp>/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd ../shared/bench && pwd)}
export PB=${PB:-/tmp/peerbench}
cargo build --release --locked
mkdir -p "$PB"
[ -f "$PB/region.gpkg" ] || python3 "$SHARED/make_dataset.py" --seed 20240607 --scale 1 --out "$PB/region.gpkg"
# nordgeo serves the harness's GeoPackage as it is (EPSG:25832, reprojected to 3857 at load),
# or with STORE=postgis the harness's PostGIS tables Martin reads (the EPSG:25832 ones,
# published from nordgeo's own schema with `set-layer --source`).
if [ "${STORE:-gpkg}" = postgis ]; then
  KEEP_RUNNING=1 bash "$SHARED/run_peer.sh" setup
  STORE_ARGS="--store postgresql://bench:bench@127.0.0.1:54329/bench --store-schema nordgeo"
  for l in trails parking parcels childcare; do
    target/release/nordgeo $STORE_ARGS set-layer "$l" --source "public.$l" > /dev/null
  done
else
  STORE_ARGS="--store $PB/region.gpkg"
fi
export PROJECT_TEMPLATE='http://127.0.0.1:8080/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}'
export PROJECT_CMD="$PWD/target/release/nordgeo $STORE_ARGS serve --bind 127.0.0.1:8080 --cache-mb ${CACHE_MB:-256}"
export PROJECT_NOCACHE_CMD="$PWD/target/release/nordgeo $STORE_ARGS serve --bind 127.0.0.1:8080 --cache-mb 0"
# The harness pipes its client into `head -1`; when head exits first the Python client
# dies of a broken pipe and `set -o pipefail` aborts the run. A head that drains its
# input after printing avoids that without touching the harness.
shim=$(mktemp -d)
cat > "$shim/head" <<'SHIM'
#!/bin/sh
for a in "$@"; do case "$a" in -*) ;; *) exec /usr/bin/head "$@" ;; esac; done
/usr/bin/head "$@"
cat > /dev/null
SHIM
chmod +x "$shim/head"
export PATH="$shim:$PATH"
exec bash "$SHARED/run_peer.sh" "${1:-all}"
