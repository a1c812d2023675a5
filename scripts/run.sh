#!/usr/bin/env bash
# `make run`: a relay on 127.0.0.1:8080 with its data in ./heartline-data and,
# when there is a display, the desktop app joined to it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

addr=${HEARTLINE_RUN_ADDR:-127.0.0.1:8080}
data=${HEARTLINE_RUN_DATA:-./heartline-data}
name=${HEARTLINE_RUN_NAME:-${USER:-me}}

bin/heartline-relay --listen "$addr" --data-dir "$data" &
relay=$!
trap 'kill $relay 2>/dev/null; wait $relay 2>/dev/null' EXIT
trap 'exit 0' INT TERM # Ctrl-C is how a person stops it: not an error

for _ in $(seq 100); do
  curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  kill -0 $relay 2>/dev/null || { echo "run: the relay did not start (see its log above)" >&2; exit 1; }
  sleep 0.1
done

echo "run: open http://$addr/r/lobby in a browser to chat from the web client"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -x bin/heartline ]; then
  echo "run: relay on ws://$addr/ws; starting the desktop app as \"$name\" in room \"lobby\""
  bin/heartline --relay "ws://$addr/ws" --room lobby --name "$name"
else
  cat <<TXT

  Heartline relay is running on ws://$addr/ws (no display here, so no desktop app).
  Chat from a browser: http://$addr/r/lobby
  Or connect from another terminal:
      go run ./cli --relay ws://$addr/ws --room lobby --name alice
      go run ./cli --relay ws://$addr/ws --room lobby --name bob
  or point the desktop app at ws://$addr/ws. Health: http://$addr/healthz  Metrics: http://$addr/metrics
  Ctrl-C stops the relay.

TXT
  wait $relay
fi
