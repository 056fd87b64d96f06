#!/usr/bin/env bash
# nordgeo's cached tiles against the ceiling program (benches/ceiling.rs: bare axum, a
# fixed 12 KB body per path) with the harness's wrk mix, in one run. Run by hand after
# scripts/bench_peer.sh has made the mix (or it is made here), not in CI.
#
#   bash scripts/bench_ceiling.sh            # wrk -t2 -c32 -d20s each, in turn, 3 rounds
#   ROUNDS=5 DURATION=10s bash scripts/bench_ceiling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd ../shared/bench && pwd)}
PB=${PB:-/tmp/peerbench}
DURATION=${DURATION:-20s}
cargo build --release --locked --example ceiling
cargo build --release --locked
[ -f "$PB/region.gpkg" ] || python3 "$SHARED/make_dataset.py" --seed 20240607 --scale 1 --out "$PB/region.gpkg"
MIX="$PB/ceiling-mix.txt"
# The harness's mix (run_peer.sh make_mix): z12 and up, shuffled, the four layers, 2,000 paths.
python3 "$SHARED/tile_list.py" --template '/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}' \
  --zmin 12 --shuffle --layers trails,parking,parcels,childcare | awk 'NR<=2000' > "$MIX"
echo "$(wc -l < "$MIX") paths in the mix"
wait_port() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1"; return 1; }
run() { # tag base
  wrk -t2 -c32 -d"$DURATION" --timeout 10s --latency -s "$SHARED/wrk_paths.lua" "$2" -- "$MIX" 2 \
    | awk -v t="$1" '/Requests\/sec/ {print t, $2}'
}
./target/release/nordgeo --store "$PB/region.gpkg" serve --bind 127.0.0.1:8080 --cache-mb 256 >/dev/null 2>&1 &
NPID=$!
./target/release/examples/ceiling 127.0.0.1:8081 >/dev/null 2>&1 &
CPID=$!
trap 'kill $NPID $CPID 2>/dev/null || true' EXIT
wait_port http://127.0.0.1:8080/health
wait_port http://127.0.0.1:8081/
# fill nordgeo's cache with every tile of the mix, then measure both in turn, ROUNDS
# times: this machine's throughput drifts by ±10 % within minutes, so each round's ratio
# compares two runs made seconds apart, and the median ratio is the result.
DURATION=15s run fill http://127.0.0.1:8080 >/dev/null
RATIOS=()
for r in $(seq "${ROUNDS:-3}"); do
  C=$(run ceiling http://127.0.0.1:8081)
  N=$(run nordgeo http://127.0.0.1:8080)
  RATIOS+=("$(python3 -c "import sys; c, n = (float(a.split()[1]) for a in sys.argv[1:3]); print(f'{100 * n / c:.1f}')" "$C" "$N")")
  echo "round $r: $C req/s, $N req/s: ${RATIOS[-1]} % of the ceiling"
done
python3 - "${RATIOS[@]}" <<'PY'
import statistics, sys
r = [float(a) for a in sys.argv[1:]]
print(f"cached tiles, wrk c=32: nordgeo at {statistics.median(r):.1f} % of the ceiling (median of {len(r)} rounds: {', '.join(f'{x:.1f}' for x in r)})")
PY
