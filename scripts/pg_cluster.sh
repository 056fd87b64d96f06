#!/usr/bin/env bash
# A throwaway PostgreSQL 15 + PostGIS 3 cluster for tests and benchmarks: no service, no
# network beyond loopback, gone with its directory.
#   scripts/pg_cluster.sh start DIR PORT   initdb (first time), start, database "nordgeo" with PostGIS
#   scripts/pg_cluster.sh stop DIR         stop fast (open connections are cut)
#   scripts/pg_cluster.sh replica DIR PORT PRIMARY_PORT
#                                          a streaming replica (hot standby) of the cluster on PRIMARY_PORT
# As root, the cluster runs as the `postgres` user (initdb refuses root).
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$BIN" ] || { echo "pg_cluster: PostgreSQL is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
cmd=${1:?start|stop}; dir=${2:?directory}
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    port=${3:?port}
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$BIN/initdb" -D "$dir" -A trust -U postgres --no-sync -E UTF8 --locale C.UTF-8 >/dev/null
    fi
    as_owner "$BIN/pg_ctl" -D "$dir" -l "$dir/log" -w -t 120 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" start >/dev/null
    if ! "$BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'nordgeo'" | grep -q 1; then
      "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres nordgeo
      "$BIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d nordgeo -c "CREATE EXTENSION postgis" >/dev/null
    fi
    ;;
  stop)
    [ -f "$dir/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    ;;
  replica)
    port=${3:?port}; primary=${4:?primary port}
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir" && chmod 700 "$dir"
    as_owner "$BIN/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir" -R -X stream --checkpoint=fast --no-sync 2>/dev/null
    as_owner "$BIN/pg_ctl" -D "$dir" -l "$dir/log" -w -t 120 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c hot_standby=on -c max_connections=200" start >/dev/null
    ;;
  restart)
    as_owner "$BIN/pg_ctl" -D "$dir" -l "$dir/log" -m fast -w restart >/dev/null
    ;;
  *) echo "pg_cluster: start|stop|restart|replica" >&2; exit 2 ;;
esac
