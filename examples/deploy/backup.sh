#!/usr/bin/env bash
# Backup and restore of a nordgeo store. The backup is a consistent copy taken while the
# server runs (SQLite's online backup API through `nordgeo publish`), checked before it
# is kept. tests/ops.rs runs this script.
#
#   examples/deploy/backup.sh backup  STORE BACKUP_DIR    # writes BACKUP_DIR/nordgeo-<UTC time>.gpkg
#   examples/deploy/backup.sh restore BACKUP_FILE STORE    # stop the server first
set -euo pipefail
NORDGEO=${NORDGEO:-nordgeo}
case "${1:-}" in
  backup)
    store=$2; dir=$3
    mkdir -p "$dir"
    out="$dir/nordgeo-$(date -u +%Y%m%dT%H%M%SZ).gpkg"
    "$NORDGEO" --store "$store" publish "$out" >&2
    # Refuse to keep a copy that SQLite does not consider intact.
    [ "$(sqlite3 "$out" 'PRAGMA integrity_check')" = ok ] || { echo "backup: $out failed integrity_check" >&2; rm -f "$out"; exit 1; }
    echo "$out"
    ;;
  restore)
    file=$2; store=$3
    [ "$(sqlite3 "$file" 'PRAGMA integrity_check')" = ok ] || { echo "restore: $file failed integrity_check" >&2; exit 1; }
    # Keep the current store (and its WAL) aside instead of overwriting it.
    if [ -e "$store" ]; then
      aside="$store.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
      mv "$store" "$aside"
      for x in -wal -shm; do [ -e "$store$x" ] && mv "$store$x" "$aside$x"; done
      echo "previous store kept as $aside"
    fi
    cp "$file" "$store.part" && mv "$store.part" "$store"
    echo "restored $file to $store"
    ;;
  *)
    echo "usage: $0 backup STORE BACKUP_DIR | restore BACKUP_FILE STORE" >&2; exit 2 ;;
esac
