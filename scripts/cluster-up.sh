#!/usr/bin/env bash
# Start a one-machine Ray head the way README "On a cluster" starts a real one: token
# authentication on, the dashboard on loopback only, Ray Train state tracking on (the
# dashboard's Train view) and a fixed Prometheus metrics port.
#
# Settings (environment, default in brackets):
#   MEDFLIP_RAY_TEMP_DIR    [/tmp/ray]  Ray's temp dir: sessions, logs, Prometheus discovery file
#   MEDFLIP_RAY_PORT        [6379]      GCS port: what drivers (--address) and workers join
#   MEDFLIP_DASHBOARD_HOST  [127.0.0.1] anything but loopback exposes the dashboard (warned)
#   MEDFLIP_DASHBOARD_PORT  [8265]
#   MEDFLIP_METRICS_PORT    [8080]      this node's Prometheus endpoint (/metrics)
#   MEDFLIP_CLIENT_PORT     [10001]     Ray Client server
#   MEDFLIP_NUM_CPUS, MEDFLIP_NUM_GPUS  [detected by Ray]
#   RAY_AUTH_TOKEN_PATH     [~/.ray/auth_token]  created (mode 600) when missing
# Further arguments go to `ray start` unchanged (e.g. --dashboard-agent-listen-port=...).
# What was started is recorded in $MEDFLIP_RAY_TEMP_DIR/medflip-cluster.env, which
# scripts/cluster-down.sh reads to stop exactly these processes and no others.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RAY_BIN=${RAY_BIN:-$ROOT/.venv/bin/ray}
[ -x "$RAY_BIN" ] || RAY_BIN=$(command -v ray) || {
    echo "cluster-up: no ray executable (run 'make install' first)" >&2; exit 1; }

TEMP_DIR=${MEDFLIP_RAY_TEMP_DIR:-/tmp/ray}
PORT=${MEDFLIP_RAY_PORT:-6379}
DASH_HOST=${MEDFLIP_DASHBOARD_HOST:-127.0.0.1}
DASH_PORT=${MEDFLIP_DASHBOARD_PORT:-8265}
METRICS_PORT=${MEDFLIP_METRICS_PORT:-8080}
CLIENT_PORT=${MEDFLIP_CLIENT_PORT:-10001}
STATE=$TEMP_DIR/medflip-cluster.env

case "$DASH_HOST" in
    127.0.0.1 | localhost | ::1) ;;
    *)
        cat >&2 <<EOF
cluster-up: WARNING ==================================================================
cluster-up: WARNING  MEDFLIP_DASHBOARD_HOST=$DASH_HOST exposes the Ray dashboard beyond this
cluster-up: WARNING  machine. Anyone who can reach it and holds the token can run code on
cluster-up: WARNING  the cluster. Prefer 127.0.0.1 and an SSH tunnel (README "On a cluster").
cluster-up: WARNING ==================================================================
EOF
        ;;
esac

if [ -f "$STATE" ]; then
    # shellcheck disable=SC1090
    . "$STATE"
    if [ -n "${GCS_PID:-}" ] && kill -0 "$GCS_PID" 2>/dev/null; then
        echo "cluster-up: already running (GCS pid $GCS_PID, $GCS_ADDRESS); stop it with" \
             "scripts/cluster-down.sh"
        exit 0
    fi
    rm -f "$STATE"
fi

# Token authentication: every node, driver and dashboard visitor needs this token.
export RAY_AUTH_MODE=token
TOKEN_PATH=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}
if [ -z "${RAY_AUTH_TOKEN:-}" ] && [ ! -s "$TOKEN_PATH" ]; then
    if [ -z "${RAY_AUTH_TOKEN_PATH:-}" ]; then
        "$RAY_BIN" get-auth-token --generate >/dev/null
    else  # `ray get-auth-token --generate` only writes the default path
        mkdir -p "$(dirname "$TOKEN_PATH")"
        (umask 077 && "$ROOT/.venv/bin/python" -c \
            "import secrets; print(secrets.token_hex(32), end='')" >"$TOKEN_PATH")
    fi
    echo "cluster-up: generated a token in $TOKEN_PATH"
fi
chmod 600 "$TOKEN_PATH" 2>/dev/null || true
# The dashboard's Train view needs Ray Train's state actor; workers inherit this from the head.
export RAY_TRAIN_ENABLE_STATE_TRACKING=1
# Ray processes that look the cluster up (Ray Train's placement-group cleaner uses the state
# API with address "auto") must find this one, even with other Ray instances on the machine.
export RAY_ADDRESS=127.0.0.1:$PORT

resources=()
[ -n "${MEDFLIP_NUM_CPUS:-}" ] && resources+=("--num-cpus=$MEDFLIP_NUM_CPUS")
[ -n "${MEDFLIP_NUM_GPUS:-}" ] && resources+=("--num-gpus=$MEDFLIP_NUM_GPUS")
mkdir -p "$TEMP_DIR"
LOG=$TEMP_DIR/medflip-cluster-up.log
if ! "$RAY_BIN" start --head --port="$PORT" \
        --include-dashboard=true --dashboard-host="$DASH_HOST" --dashboard-port="$DASH_PORT" \
        --metrics-export-port="$METRICS_PORT" --ray-client-server-port="$CLIENT_PORT" \
        --temp-dir="$TEMP_DIR" --disable-usage-stats ${resources[@]+"${resources[@]}"} "$@" \
        >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "cluster-up: ray start failed (log above, also in $LOG)" >&2
    exit 1
fi

SESSION_DIR=$(readlink -f "$TEMP_DIR/session_latest")
GCS_ADDRESS=$(cat "$TEMP_DIR/ray_current_cluster")
GCS_PID=$(pgrep -f -- "gcs_server --log_dir=$SESSION_DIR/" | head -n 1 || true)
cat >"$STATE" <<EOF
SESSION_DIR=$SESSION_DIR
GCS_ADDRESS=$GCS_ADDRESS
GCS_PID=$GCS_PID
LOCAL_ADDRESS=127.0.0.1:$PORT
DASHBOARD_URL=http://$DASH_HOST:$DASH_PORT
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
TOKEN_PATH=$TOKEN_PATH
EOF

token_env="export RAY_AUTH_MODE=token"
[ -n "${RAY_AUTH_TOKEN_PATH:-}" ] && token_env="$token_env RAY_AUTH_TOKEN_PATH=$TOKEN_PATH"
cat <<EOF
medflip cluster up (session $(basename "$SESSION_DIR"))
  address    127.0.0.1:$PORT   e.g. python sweeps/mask_ratio.py --address auto --smoke-test
  dashboard  http://$DASH_HOST:$DASH_PORT   (paste the token from $TOKEN_PATH when asked)
  metrics    http://127.0.0.1:$METRICS_PORT/metrics   (Prometheus: deploy/prometheus.yml)
  drivers    $token_env
  logs       $SESSION_DIR/logs
  stop       scripts/cluster-down.sh   (or make cluster-down)
EOF
