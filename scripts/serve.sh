#!/usr/bin/env bash
# Serves the bundled sample data on http://127.0.0.1:8080 (the store is built from
# data/sample.gpkg on first run). Extra arguments go to `nordgeo serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --release --locked -- serve "$@"
