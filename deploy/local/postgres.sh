#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for development and tests (the PostgreSQL store) — no Docker needed.
#
#   deploy/local/postgres.sh start|stop|status|url|env|clean
#
# Runs Debian's PostgreSQL server (/usr/lib/postgresql/<newest>/bin; installed with apt when
# missing and run as root) on loopback only, with every file under one directory:
#   IVPUSH_POSTGRES_DIR   default <repo>/.local/postgres (.local/ is git-ignored)
#   IVPUSH_POSTGRES_PORT  TCP port on 127.0.0.1, default 45432 (the Unix socket lives in DIR/run)
#   IVPUSH_POSTGRES_BIN   the server's bin directory, when not the newest /usr/lib/postgresql/*/bin
# Superuser `ivpush`, database `ivpush`, **trust** authentication on loopback: a test cluster,
# never a production one. initdb/postgres refuse to run as root: as root they run as the
# `postgres` system user (made by the Debian package), who then owns DIR (the path to DIR is
# made traversable for it when it is not). `start` prints the URL and writes DIR/env
# (IVPUSH_TEST_POSTGRES_URL=..., sourceable); `stop` stops only this cluster (pg_ctl on its data
# directory); `clean` stops it and deletes DIR.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${IVPUSH_POSTGRES_DIR:-$REPO/.local/postgres}"
PORT="${IVPUSH_POSTGRES_PORT:-45432}"
DB=ivpush
SUPERUSER=ivpush
URL="postgresql://${SUPERUSER}@127.0.0.1:${PORT}/${DB}"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
DATA="$DIR/data"
RUN="$DIR/run"
LOG="$DIR/log"

find_bin() {
  if [ -n "${IVPUSH_POSTGRES_BIN:-}" ]; then echo "$IVPUSH_POSTGRES_BIN"; return 0; fi
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$found" ] && [ -x "$found/postgres" ] && echo "$found"
}

ensure_installed() {
  PG_BIN="$(find_bin || true)"
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/postgres" ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "installing postgresql (Debian package)…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN="$(find_bin || true)"
    [ -n "$PG_BIN" ] && return 0
  fi
  echo "PostgreSQL server not found under /usr/lib/postgresql/*/bin: run 'sudo apt-get install -y postgresql'" \
    "(or this script as root), or set IVPUSH_POSTGRES_BIN" >&2
  return 1
}

as_owner() {  # run a server tool as the cluster's owner (postgres when we are root)
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

make_reachable() {  # as root: the postgres user must own DIR and be able to traverse to it
  [ "$(id -u)" = 0 ] || return 0
  if ! id postgres >/dev/null 2>&1; then
    echo "no 'postgres' system user (the Debian postgresql package creates it)" >&2
    return 1
  fi
  chown -R postgres: "$DIR"
  local path="$DIR"
  while [ "$path" != "/" ]; do
    path="$(dirname "$path")"
    if ! runuser -u postgres -- test -x "$path"; then
      echo "note: chmod o+x $path (so the postgres user can reach $DIR)" >&2
      chmod o+x "$path"
    fi
  done
}

alive() {
  [ -n "${PG_BIN:-}" ] && [ -s "$DATA/postmaster.pid" ] || return 1
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U "$SUPERUSER" >/dev/null 2>&1 &&
    as_owner "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

write_env() {
  {
    echo "IVPUSH_TEST_POSTGRES_URL=$URL"
    echo "IVPUSH_POSTGRES_DIR=$DIR"
    echo "IVPUSH_POSTGRES_PORT=$PORT"
  } >"$DIR/env"
}

init_cluster() {
  [ -s "$DATA/PG_VERSION" ] && return 0
  mkdir -p "$DATA" "$RUN" "$LOG"
  chmod 700 "$DATA"
  make_reachable
  as_owner "$PG_BIN/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust --encoding=UTF8 --no-locale \
    >"$LOG/initdb.log" 2>&1 || { echo "initdb failed; see $LOG/initdb.log" >&2; tail -n 20 "$LOG/initdb.log" >&2; return 1; }
  # Loopback only, the socket inside DIR, quiet logs; include_if_exists lets a developer tune more.
  cat >>"$DATA/postgresql.conf" <<EOF

# deploy/local/postgres.sh: a throwaway test cluster
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN'
log_min_messages = warning
logging_collector = off
max_connections = 200
include_if_exists = '$DIR/local.conf'
EOF
}

start() {
  ensure_installed
  if alive; then
    write_env
    echo "$URL"
    return 0
  fi
  init_cluster
  mkdir -p "$RUN" "$LOG"
  make_reachable
  # setsid: the server outlives this script and ignores the caller's Ctrl-C
  if ! as_owner setsid "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG/postgres.log" -w -t 60 start >"$LOG/start.log" 2>&1; then
    echo "postgres did not start; see $LOG" >&2
    tail -n 20 "$LOG/postgres.log" >&2 || true
    return 1
  fi
  if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -tAq \
    -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" "$DB"
  fi
  write_env
  echo "$URL"
}

stop() {
  PG_BIN="$(find_bin || true)"
  [ -n "$PG_BIN" ] && [ -s "$DATA/postmaster.pid" ] || return 0
  as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    PG_BIN="$(find_bin || true)"
    if alive; then echo "running: $URL"; else echo "stopped"; exit 3; fi
    ;;
  url) echo "$URL" ;;
  clean)
    stop
    rm -rf "$DIR"
    ;;
  env) write_env; cat "$DIR/env" ;;
  *)
    echo "usage: $0 start|stop|status|url|env|clean" >&2
    exit 2
    ;;
esac
