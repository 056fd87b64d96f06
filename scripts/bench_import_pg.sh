#!/usr/bin/env bash
# Import into PostGIS: `nordgeo import` (checked, then COPY) against `ogr2ogr -f PostgreSQL`
# on the same layer of the same file into the same throwaway cluster, alternating, in one
# run. Run by hand, not in CI.
#   bash scripts/bench_import_pg.sh [FILE.gpkg] [LAYER]   (default: the harness's scale-1 parcels)
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:-/tmp/peerbench/region.gpkg}
LAYER=${2:-parcels}
ROUNDS=${ROUNDS:-3}
[ -f "$FILE" ] || python3 ../shared/bench/make_dataset.py --seed 20240607 --scale 1 --out "$FILE"
cargo build --release --locked -q
DIR=$(mktemp -d); PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'bash scripts/pg_cluster.sh stop "$DIR"; rm -rf "$DIR"' EXIT
bash scripts/pg_cluster.sh start "$DIR" "$PORT"
PSQL=(psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d nordgeo)
STORE="postgresql://postgres@127.0.0.1:$PORT/nordgeo"
PG="PG:host=127.0.0.1 port=$PORT dbname=nordgeo user=postgres"
echo "file $FILE, layer $LAYER ($(ogrinfo -ro -so "$FILE" "$LAYER" | sed -n 's/Feature Count: //p') features)"
for i in $(seq "$ROUNDS"); do
  "${PSQL[@]}" -c "DROP TABLE IF EXISTS ogr_$LAYER, ng_$LAYER, nordgeo_history_ng_$LAYER CASCADE" -c "DELETE FROM nordgeo_layers WHERE table_name = 'ng_$LAYER'" 2>/dev/null || true
  t0=$(date +%s.%N)
  ogr2ogr -f PostgreSQL "$PG" "$FILE" "$LAYER" -nln "ogr_$LAYER"
  t1=$(date +%s.%N)
  target/release/nordgeo --store "$STORE" import "$FILE" --layer "$LAYER" --into "ng_$LAYER" > /dev/null
  t2=$(date +%s.%N)
  printf 'round %d: ogr2ogr %.2f s, nordgeo %.2f s, ratio ogr2ogr/nordgeo %.2f\n' "$i" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "($t1 - $t0) / ($t2 - $t1)" | bc -l)"
done
"${PSQL[@]}" -tAc "SELECT 'rows: ogr2ogr ' || (SELECT count(*) FROM ogr_$LAYER) || ', nordgeo ' || (SELECT count(*) FROM ng_$LAYER)"
