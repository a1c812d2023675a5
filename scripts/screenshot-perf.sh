#!/usr/bin/env bash
# Start-up time to first frame and idle memory of the desktop app, on a
# virtual display, with an empty room and with 10,000 messages loaded
# (--preload, which fills the room with generated messages before the
# window opens). Prints one line per case; repeat with RUNS=n.
#
#   first frame: from exec to the first time the window shows drawn content
#                (polled with ImageMagick every ~30 ms, so +-30 ms)
#   idle RSS:    VmRSS after the app has been idle for IDLE seconds
#
# Needs Xvfb, xdotool and ImageMagick, like scripts/screenshots.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
idle=${IDLE:-10}
port=${PERF_PORT:-17072}
display=${PERF_DISPLAY:-:96}
app_bin=${APP_BIN:-bin/heartline}
relay_bin=${RELAY_BIN:-bin/heartline-relay}

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [ ! -x "$app_bin" ] || [ ! -x "$relay_bin" ]; then
  go build -o "$tmp/heartline" ./desktop
  go build -o "$tmp/heartline-relay" ./relay
  app_bin=$tmp/heartline relay_bin=$tmp/heartline-relay
fi

export DISPLAY=$display LANG=en_US.UTF-8 HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config
mkdir -p "$HOME"
unset DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done

# No STUN responder: nothing here measures UDP, and the default ports may be
# another relay's on a shared machine.
"$relay_bin" --listen "127.0.0.1:$port" --stun-port 0 --data-dir "$tmp/relay" >"$tmp/relay.log" 2>&1 &
pids+=($!)
ready=
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && ready=1 && break; sleep 0.1; done
if [ -z "$ready" ]; then
  echo "screenshot-perf: the relay did not start on port $port (PERF_PORT picks another):" >&2
  cat "$tmp/relay.log" >&2
  exit 1
fi

now_ms() { date +%s%3N; }

measure() { # measure LABEL PRELOAD RUN
  local label=$1 preload=$2 run=$3 start pid wid first=
  start=$(now_ms)
  "$app_bin" --profile "perf$run$preload" --relay "127.0.0.1:$port" --room "perf$run$preload" --name "Perf $run" \
    --size 1000x700 --preload "$preload" >"$tmp/app.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wid=$(xdotool search --sync --onlyvisible --pid "$pid" | head -1)
  local mapped=$(($(now_ms) - start))
  for _ in $(seq 400); do
    sd=$(import -window "$wid" -colorspace gray -format '%[fx:standard_deviation]' info: 2>/dev/null || echo 0)
    if awk -v s="$sd" 'BEGIN { exit !(s > 0.02) }'; then first=$(($(now_ms) - start)); break; fi
  done
  sleep "$idle"
  local rss
  rss=$(awk '/VmRSS/ { printf "%.0f", $2/1024 }' "/proc/$pid/status")
  printf '%-22s run %d: window mapped %5d ms, first drawn frame %5s ms, idle RSS %4s MB\n' "$label" "$run" "$mapped" "${first:-?}" "$rss"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

for run in $(seq 1 "$runs"); do
  measure "empty room" 0 "$run"
  measure "10,000 messages" 10000 "$run"
done
