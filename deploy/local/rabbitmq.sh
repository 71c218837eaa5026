#!/usr/bin/env bash
# A throwaway RabbitMQ node for development, tests and `make demo` — no Docker needed.
#
#   deploy/local/rabbitmq.sh start|stop|status|url|env|clean|ctl ARGS...
#
# Runs Debian's rabbitmq-server (installed with apt when missing and run as root) on loopback
# with private ports, its own epmd, its own Erlang cookie and every file under one directory:
#   IVPUSH_RABBITMQ_DIR   default <repo>/.local/rabbitmq (.local/ is git-ignored)
#   IVPUSH_RABBITMQ_PORT  AMQP port, default 45672 (Erlang distribution: +1, epmd: +2, amqps: +3;
#                         not 35672-35682, the CLI tools' range)
# With openssl present, an amqps listener uses a private CA made under DIR/tls (for TLS tests).
# `start` prints the AMQP URL and writes DIR/env (IVPUSH_AMQP_URL=..., sourceable);
# `ctl` runs rabbitmqctl against this node; `stop` stops only the node and epmd it started
# (by the pids it recorded); `clean` stops and deletes DIR (queues and messages included).
# Facts behind each step: rabbitmq-notes.md (shared docs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${IVPUSH_RABBITMQ_DIR:-$REPO/.local/rabbitmq}"
PORT="${IVPUSH_RABBITMQ_PORT:-45672}"
DIST_PORT=$((PORT + 1))
EPMD_PORT=$((PORT + 2))
TLS_PORT=$((PORT + 3))
RMQ_BIN=/usr/lib/rabbitmq/bin
DEFINITIONS="${IVPUSH_RABBITMQ_DEFINITIONS:-$REPO/deploy/rabbitmq/definitions.json}"
URL="amqp://guest:guest@127.0.0.1:${PORT}/%2F"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PIDFILE="$DIR/rabbitmq.pid"
EPMD_PIDFILE="$DIR/epmd.pid"

node_env() {
  export HOME="$DIR/home"  # the Erlang cookie lives here, not in the caller's home
  export RABBITMQ_NODENAME="ivpush-${PORT}@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT"
  export ERL_EPMD_PORT="$EPMD_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
  export RABBITMQ_LOG_BASE="$DIR/log"
  export RABBITMQ_PID_FILE="$PIDFILE"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
  export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"  # not /etc/rabbitmq's
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
}

ensure_installed() {
  [ -x "$RMQ_BIN/rabbitmq-server" ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "installing rabbitmq-server (Debian package)…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    echo "rabbitmq-server is not installed: run 'sudo apt-get install -y rabbitmq-server' (or this script as root)" >&2
    return 1
  fi
}

alive() {  # the node we started is running and answers
  [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null || return 1
  "$RMQ_BIN/rabbitmq-diagnostics" -q ping >/dev/null 2>&1
}

tls_files() {  # a private CA and a localhost server certificate, made once
  local t="$DIR/tls"
  command -v openssl >/dev/null 2>&1 || return 1
  [ -s "$t/server.pem" ] && return 0
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ivpush local test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" >/dev/null 2>&1 &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$t/server.key" -out "$t/server.csr" >/dev/null 2>&1 &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$t/ext" &&
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 3650 \
      -extfile "$t/ext" -out "$t/server.pem" >/dev/null 2>&1
}

write_env() {
  {
    echo "IVPUSH_AMQP_URL=$URL"
    echo "IVPUSH_RABBITMQ_DIR=$DIR"
    echo "IVPUSH_RABBITMQ_PORT=$PORT"
    if grep -q '^listeners.ssl' "$DIR/rabbitmq.conf" 2>/dev/null; then
      echo "IVPUSH_LOCAL_AMQPS_URL=amqps://guest:guest@localhost:${TLS_PORT}/%2F"
      echo "IVPUSH_LOCAL_CA_FILE=$DIR/tls/ca.pem"
    fi
  } >"$DIR/env"
}

start() {
  ensure_installed
  node_env
  if alive; then
    write_env
    echo "$URL"
    return 0
  fi
  : >"$RABBITMQ_CONF_ENV_FILE"
  echo "[rabbitmq_consistent_hash_exchange]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"  # enabled offline
  echo "[]." >"$RABBITMQ_ADVANCED_CONFIG_FILE"
  {
    echo "log.console = false"
    echo "log.file.level = warning"
    if tls_files; then
      echo "listeners.ssl.default = 127.0.0.1:$TLS_PORT"
      echo "ssl_options.cacertfile = $DIR/tls/ca.pem"
      echo "ssl_options.certfile = $DIR/tls/server.pem"
      echo "ssl_options.keyfile = $DIR/tls/server.key"
      echo "ssl_options.verify = verify_none"
      echo "ssl_options.fail_if_no_peer_cert = false"
    fi
  } >"$DIR/rabbitmq.conf"
  # Our own epmd on a private port, so stopping it cannot touch anyone else's nodes.
  if ! { [ -s "$EPMD_PIDFILE" ] && kill -0 "$(cat "$EPMD_PIDFILE")" 2>/dev/null; }; then
    setsid epmd -address 127.0.0.1 -port "$EPMD_PORT" </dev/null >"$DIR/log/epmd.log" 2>&1 &
    echo $! >"$EPMD_PIDFILE"
  fi
  rm -f "$PIDFILE"
  "$RMQ_BIN/rabbitmq-server" -detached >"$DIR/log/start.log" 2>&1
  for _ in $(seq 1 100); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  if ! "$RMQ_BIN/rabbitmqctl" -q wait "$PIDFILE" --timeout 90 >>"$DIR/log/start.log" 2>&1; then
    echo "rabbitmq did not start; see $DIR/log" >&2
    tail -n 20 "$DIR"/log/*.log >&2 || true
    return 1
  fi
  # Imported after boot, not with load_definitions: a node that loads definitions at its first
  # boot skips creating the default (loopback-only) guest user that this throwaway node uses.
  if [ -f "$DEFINITIONS" ]; then
    "$RMQ_BIN/rabbitmqctl" -q import_definitions "$DEFINITIONS" >>"$DIR/log/start.log" 2>&1 ||
      echo "warning: could not import $DEFINITIONS (see $DIR/log/start.log)" >&2
  fi
  write_env
  echo "$URL"
}

stop() {
  node_env
  if [ -s "$PIDFILE" ]; then
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      "$RMQ_BIN/rabbitmqctl" -q stop "$PIDFILE" >/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
  fi
  if [ -s "$EPMD_PIDFILE" ]; then
    kill "$(cat "$EPMD_PIDFILE")" 2>/dev/null || true
    rm -f "$EPMD_PIDFILE"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    node_env
    if [ -x "$RMQ_BIN/rabbitmq-server" ] && alive; then echo "running: $URL"; else echo "stopped"; exit 3; fi
    ;;
  url) echo "$URL" ;;
  clean)
    stop
    rm -rf "$DIR"
    ;;
  env) write_env; cat "$DIR/env" ;;
  ctl)
    shift
    node_env
    exec "$RMQ_BIN/rabbitmqctl" "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status|url|env|clean|ctl ARGS..." >&2
    exit 2
    ;;
esac
