#!/usr/bin/env bash
# Installs everything nordgeo needs on a fresh Debian 12 machine: the C libraries the
# build links (PROJ, libclang for bindgen) and the real clients the tests talk to
# (GDAL 3.6, PROJ's cs2cs, QGIS 3.22 for headless rendering, the pip GeoPackage
# validator, pyogrio with GDAL 3.12).
# Idempotent: a second run only checks. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pkg-config clang libclang-dev libproj-dev proj-bin proj-data
              gdal-bin sqlite3 ca-certificates python3-qgis qgis-providers
              chromium fonts-dejavu-core wrk
              postgresql-15 postgresql-15-postgis-3 postgis)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python clients in a project-local venv (pip's gdal-utils validator knows GeoPackage 1.4;
# Debian's python3-gdal copy rejects valid 1.4 files).
VENV=.venv-clients
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import osgeo_utils, pyogrio, mapbox_vector_tile, owslib, morecantile, pmtiles, jsonschema, shapely, pyproj" 2>/dev/null; then
  echo "setup: installing Python clients into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check pyogrio mapbox-vector-tile owslib morecantile \
    pmtiles jsonschema shapely pyproj
  # gdal-utils' validator needs only sqlite3 from the standard library; its osgeo
  # bindings are not needed, hence --no-deps.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps gdal-utils
fi
# MapLibre GL JS (served by nordgeo itself at /assets/maplibre-gl/), the style validator
# and the browser-test driver, at the versions pinned in web/package-lock.json.
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "setup: installing web dependencies (npm ci in web/)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: ok"
