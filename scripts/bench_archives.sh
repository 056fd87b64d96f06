#!/usr/bin/env bash
# Archive tiles: nordgeo against Martin 1.14 serving the same PMTiles file, wrk c=32 on
# every tile of the archive in turn (gzip accepted, as browsers send). Run by hand, not
# in CI; the ratio of the two runs of one invocation is the figure (shared 2-core host).
#
#   bash scripts/bench_archives.sh            # 20 s per server
#   DURATION=30s bash scripts/bench_archives.sh
#
# The archive is the scale-1 harness data written by `nordgeo export-tiles` (z0-14,
# PMTiles v3 with leaf directories), so both servers read directories and tiles of a
# realistic file. Needs wrk, the clients' venv (pmtiles package) for the tile list, and
# Martin 1.14 built with its pmtiles feature (the harness's build has only postgres):
#   cargo install martin --locked --version 1.14.0 --no-default-features --features pmtiles \
#       --root ~/.local/martin-pmtiles          # ~10 min; or MARTIN=/path/to/martin
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd ../shared/bench && pwd)}
PB=${PB:-/tmp/peerbench}
MARTIN=${MARTIN:-$HOME/.local/martin-pmtiles/bin/martin}
DURATION=${DURATION:-20s}
mkdir -p "$PB"
cargo build --release --locked
cargo build --release --locked --example ceiling
[ -f "$PB/region.gpkg" ] || python3 "$SHARED/make_dataset.py" --seed 20240607 --scale 1 --out "$PB/region.gpkg"
ARCHIVE=${ARCHIVE:-$PB/bench.pmtiles}
if [ ! -f "$ARCHIVE" ]; then
  echo "writing $ARCHIVE (z0-14)"
  ./target/release/nordgeo --store "$PB/region.gpkg" export-tiles --maxzoom 14 "$ARCHIVE"
fi
# Every tile of the archive, as the independent reader lists it, and its bytes as files
# for the ceiling program (bare axum answering each path with the tile from memory).
TILE_DIR="$PB/archive_tiles.d"
rm -rf "$TILE_DIR"
.venv-clients/bin/python - "$ARCHIVE" "$PB/archive_tiles.txt" "$TILE_DIR" <<'PY'
import os, sys
from pmtiles.reader import MmapSource, all_tiles
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "w") as out:
    n = 0
    for (z, x, y), data in all_tiles(MmapSource(f)):
        out.write(f"{z}/{x}/{y}\n")
        os.makedirs(f"{sys.argv[3]}/{z}/{x}", exist_ok=True)
        with open(f"{sys.argv[3]}/{z}/{x}/{y}", "wb") as t:
            t.write(data)
        n += 1
print(f"{n} tiles in the archive")
PY
cat > "$PB/archive_paths.lua" <<'LUA'
local paths = {}
local prefix = os.getenv("TILE_PREFIX")
for line in io.lines(os.getenv("TILE_LIST")) do paths[#paths + 1] = prefix .. line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["Accept-Encoding"] = "gzip"})
end
done = function(summary, latency, requests)
  io.write(string.format("STATS rps=%.0f non2xx=%d errors=%d p99_ms=%.2f\n",
    summary.requests / (summary.duration / 1e6), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(99) / 1000))
end
LUA
cat > "$PB/archives.toml" <<TOML
[archives.bench]
path = "$ARCHIVE"
TOML
SOURCE=$(basename "$ARCHIVE" .pmtiles)   # Martin's source id

wait_port() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1"; return 1; }
run() { # name url-prefix base
  TILE_LIST="$PB/archive_tiles.txt" TILE_PREFIX="$2" wrk -t2 -c32 -d"$DURATION" --timeout 5s \
    -s "$PB/archive_paths.lua" "$3" | grep STATS | sed "s/^/$1 /"
}

./target/release/nordgeo --store "$PB/region.gpkg" serve --bind 127.0.0.1:8080 \
  --config "$PB/archives.toml" >/dev/null 2>&1 &
NPID=$!
"$MARTIN" --listen-addresses 127.0.0.1:3000 "$ARCHIVE" >/dev/null 2>&1 &
MPID=$!
./target/release/examples/ceiling 127.0.0.1:8081 "$TILE_DIR" >/dev/null 2>&1 &
CPID=$!
trap 'kill $NPID $MPID $CPID 2>/dev/null || true' EXIT
wait_port http://127.0.0.1:8080/archives/bench/tilejson.json
wait_port "http://127.0.0.1:3000/$SOURCE"
wait_port "http://127.0.0.1:8081/$(head -1 "$PB/archive_tiles.txt")"
# a short warm-up each (page cache, directory caches), then the measured runs in turn
DURATION=3s run warmup-nordgeo /archives/bench/ http://127.0.0.1:8080 >/dev/null
DURATION=3s run warmup-martin "/$SOURCE/" http://127.0.0.1:3000 >/dev/null
N=$(run nordgeo /archives/bench/ http://127.0.0.1:8080)
M=$(run martin "/$SOURCE/" http://127.0.0.1:3000)
C=$(run ceiling / http://127.0.0.1:8081)
echo "$N"
echo "$M"
echo "$C"
python3 - "$N" "$M" "$C" <<'PY'
import sys
rps = lambda s: float(s.split("rps=")[1].split()[0])
n, m, c = (rps(a) for a in sys.argv[1:4])
print(f"archive tiles, wrk c=32: nordgeo {n:.0f} req/s, Martin {m:.0f} req/s, ratio {n / m:.2f}x")
print(f"ceiling (bare axum, the same bytes from memory) {c:.0f} req/s = {c / m:.2f}x Martin; "
      f"nordgeo at {100 * n / c:.0f} % of it")
PY
