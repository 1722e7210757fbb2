#!/usr/bin/env bash
# The MLflow tracking server (docs/explanation/architecture.md, "Tracking"): start it, stop it, say where it is.
#
#   mlflow/server.sh up      start it in the background if it is not running, wait until healthy, print the URL
#   mlflow/server.sh down    stop what `up` started (its whole process group) and wait until it is gone
#   mlflow/server.sh status  say whether it runs (exit 0) or not (exit 1)
#   mlflow/server.sh url     print the tracking URL
#
# Config: $MLFLOW_CONFIG, default mlflow/embedded.env (SQLite + local artifacts); mlflow/scaled-out.env is
# Postgres + S3. Everything the server writes (database, artifacts, pid file, log) goes under
# $ASTROSPECT_HOME (default ./data, git-ignored): nothing is written into tracked files.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
ASTROSPECT_HOME="$(realpath -m "${ASTROSPECT_HOME:-$ROOT/data}")"
export ASTROSPECT_HOME
CONFIG="${MLFLOW_CONFIG:-$HERE/embedded.env}"
[[ -f "$CONFIG" ]] || { echo "mlflow/server.sh: config file $CONFIG not found" >&2; exit 2; }
# shellcheck source=embedded.env
source "$CONFIG"

MLFLOW_BIN="${MLFLOW_BIN:-$ROOT/.venv/bin/mlflow}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PID_FILE="$MLFLOW_STATE_DIR/server.pid"
LOG_FILE="$MLFLOW_STATE_DIR/server.log"
START_TIMEOUT_S="${MLFLOW_START_TIMEOUT_S:-180}"  # first start creates the schema; a busy 2-core box is slow
STOP_TIMEOUT_S="${MLFLOW_STOP_TIMEOUT_S:-20}"
PROBE_HOST="$MLFLOW_HOST"
[[ "$PROBE_HOST" == "0.0.0.0" ]] && PROBE_HOST="127.0.0.1"
URL="http://$PROBE_HOST:$MLFLOW_PORT"

# 0 when an MLflow server answers /health at $URL.
healthy() {
    "$PYTHON" - "$URL" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/health", timeout=2) as response:
        sys.exit(0 if response.read().strip() == b"OK" else 1)
except OSError:
    sys.exit(1)
PY
}

# 0 when something (anything) accepts connections on the port.
port_taken() {
    "$PYTHON" - "$PROBE_HOST" "$MLFLOW_PORT" <<'PY'
import socket, sys
with socket.socket() as sock:
    sock.settimeout(1)
    sys.exit(0 if sock.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

# The pid in the pid file when that process is alive and is an MLflow server (not a reused pid).
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "mlflow server" || return 1
    echo "$pid"
}

up() {
    local pid
    if pid="$(our_pid)"; then
        wait_healthy "$pid"
        echo "MLflow tracking server already running (pid $pid): $URL"
        return 0
    fi
    rm -f "$PID_FILE"
    if port_taken; then
        echo "mlflow/server.sh: port $MLFLOW_PORT on $PROBE_HOST is taken by another process;" \
            "set MLFLOW_PORT (and MLFLOW_TRACKING_URI) to a free one" >&2
        return 1
    fi
    mkdir -p "$MLFLOW_STATE_DIR"
    [[ "$MLFLOW_ARTIFACTS_DESTINATION" == *://* ]] || mkdir -p "$MLFLOW_ARTIFACTS_DESTINATION"
    local args=(server
        --backend-store-uri "$MLFLOW_BACKEND_STORE_URI"
        --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION"
        --host "$MLFLOW_HOST" --port "$MLFLOW_PORT" --workers "$MLFLOW_WORKERS")
    [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]] && args+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
    echo "$(date -u +%FT%TZ) starting: mlflow ${args[*]}" >>"$LOG_FILE"
    # Its own session (setsid) makes the server the leader of a process group that holds its workers
    # too, so `down` stops all of them by that one id.
    setsid "$MLFLOW_BIN" "${args[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    wait_healthy "$pid"
    echo "MLflow tracking server running (pid $pid, log $LOG_FILE): $URL"
}

wait_healthy() {
    local pid="$1" waited=0
    until healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "mlflow/server.sh: the server exited during start-up; last lines of $LOG_FILE:" >&2
            tail -n 20 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            return 1
        fi
        if ((waited >= START_TIMEOUT_S * 2)); then
            echo "mlflow/server.sh: not healthy after ${START_TIMEOUT_S}s (pid $pid, log $LOG_FILE)" >&2
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
}

down() {
    local pid waited=0
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        echo "MLflow tracking server not running"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    while kill -0 -- "-$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT_S * 2)); then
            echo "mlflow/server.sh: still running after ${STOP_TIMEOUT_S}s; sending SIGKILL to group $pid" >&2
            kill -KILL -- "-$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    rm -f "$PID_FILE"
    echo "MLflow tracking server stopped (pid $pid)"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status)
        if pid="$(our_pid)" && healthy; then echo "running (pid $pid): $URL"; else echo "not running"; exit 1; fi
        ;;
    url) echo "$URL" ;;
    *)
        echo "usage: $0 up|down|status|url" >&2
        exit 2
        ;;
esac
