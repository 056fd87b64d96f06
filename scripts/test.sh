#!/usr/bin/env bash
# The whole test suite: installs what the tests need (scripts/setup.sh), then runs every
# test, including those that drive the real clients (GDAL, the GeoPackage validator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --all-targets --locked 2>&1
