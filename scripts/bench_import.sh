#!/usr/bin/env bash
# A county-sized import against ogr2ogr writing the same layer (issue 14): the parcels of
# `nordgeo generate --scale 5` (1.5 million) into a new store, peak memory and wall time,
# the two in turn. Run by hand with a release build: bash scripts/bench_import.sh [SCALE]
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-5}"
bin=target/release/nordgeo
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --release --locked -q
"$bin" generate "$work/region.gpkg" --scale "$scale" >/dev/null
for round in 1 2 3; do
    rm -f "$work/ogr.gpkg" "$work"/store.gpkg*
    /usr/bin/time -f "ogr2ogr  round $round: %e s wall, %M KB peak" \
        ogr2ogr -f GPKG "$work/ogr.gpkg" "$work/region.gpkg" parcels
    /usr/bin/time -f "nordgeo  round $round: %e s wall, %M KB peak" \
        "$bin" --store "$work/store.gpkg" import "$work/region.gpkg" --layer parcels >/dev/null
done
sqlite3 "$work/store.gpkg" "SELECT 'rtreecheck: ' || rtreecheck('rtree_parcels_geom')"
