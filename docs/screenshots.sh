#!/usr/bin/env bash
# Regenerate the README's pictures (docs/images/*.png) from this clone's pipelines and MLflow store.
#
#   make run                       # first: a tracked run and a @champion to show
#   docs/screenshots.sh            # free loopback ports are picked
#   docs/screenshots.sh 5000 4141  # or given: MLflow UI port, kedro-viz port
#
# Needs headless Chromium: Debian `apt-get install -y chromium` (or set CHROMIUM=/path/to/chrome).
# Starts the MLflow UI and kedro-viz on 127.0.0.1, captures three pictures with
# docs/screenshots.py, and always stops both servers.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.venv/bin"
export PATH="$BIN:$PATH" KEDRO_DISABLE_TELEMETRY=true MLFLOW_DISABLE_TELEMETRY=true
TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlflow.db}"
MODEL="${MODEL:-neurontune-colored_mnist}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$CHROMIUM" ]; then
  echo "docs/screenshots.sh: no Chromium found; install it (Debian: apt-get install -y chromium) or set CHROMIUM to a Chrome/Chromium binary" >&2
  exit 1
fi
test -x "$BIN/python" || { echo "docs/screenshots.sh: no .venv here: run \`make run\` first" >&2; exit 1; }

free_port() {  # below 49152: kedro-viz refuses ports in the ephemeral range
  "$BIN/python" -c '
import random, socket
for port in random.sample(range(20000, 49152), 1000):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) != 0:  # nothing listens there
            print(port)
            break'
}
UI_PORT="${1:-$(free_port)}"
VIZ_PORT="${2:-$(free_port)}"
LOGS="$(mktemp -d)"
SERVERS=()

stop_servers() {
  # each server runs in its own process group (set -m): stop its workers too; kill what lingers
  for pid in "${SERVERS[@]}"; do kill -INT -- "-$pid" 2>/dev/null || true; done  # what Ctrl-C sends
  for _ in $(seq 20); do
    alive=0
    for pid in "${SERVERS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${SERVERS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$LOGS"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

set -m  # background jobs get their own process groups
mlflow ui --backend-store-uri "$TRACKING_URI" --host 127.0.0.1 --port "$UI_PORT" >"$LOGS/mlflow.log" 2>&1 &
SERVERS+=($!)
kedro viz run --host 127.0.0.1 --port "$VIZ_PORT" --no-browser >"$LOGS/viz.log" 2>&1 &
SERVERS+=($!)
set +m

wait_for() {  # URL PID LOG: until URL answers; fail with the server's log if it exits or takes > 180 s
  for _ in $(seq 360); do
    "$BIN/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "server for $1 exited:" >&2; tail -n 30 "$3" >&2; return 1; }
    sleep 0.5
  done
  echo "no answer from $1 within 180 s:" >&2; tail -n 30 "$3" >&2; return 1
}
wait_for "http://127.0.0.1:$UI_PORT/health" "${SERVERS[0]}" "$LOGS/mlflow.log"
echo "MLflow UI on http://127.0.0.1:$UI_PORT (${SECONDS} s)"
wait_for "http://127.0.0.1:$VIZ_PORT/api/main" "${SERVERS[1]}" "$LOGS/viz.log"
echo "kedro-viz on http://127.0.0.1:$VIZ_PORT (${SECONDS} s)"

"$BIN/python" docs/screenshots.py --mlflow "http://127.0.0.1:$UI_PORT" --viz "http://127.0.0.1:$VIZ_PORT" \
  --tracking-uri "$TRACKING_URI" --model "$MODEL" --chromium "$CHROMIUM" --out docs/images
echo "captured in ${SECONDS} s"
