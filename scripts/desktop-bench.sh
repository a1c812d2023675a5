#!/usr/bin/env bash
# The desktop app's start-up, room switching, search, memory and idle CPU
# with many rooms and a long local history (docs/BENCHMARKS.md, "Desktop
# app"). Under Xvfb: a relay; the app joins ROOMS rooms (default 20) and
# quits; --seed-history adds MESSAGES (default 200,000) to the device's
# history of those rooms; the app is opened again (every room from the
# settings, its latest page from the device) and timed until its window is
# up; after SETTLE seconds (default 30: the app lays out an unseen room a second after start) with every room connected it
# measures goroutines, RSS, CPU over IDLE seconds (default 30) and the time
# to switch to each room and to search every room.
#
# Needs what `make screenshots` needs (Xvfb, xdotool) and bin/heartline,
# bin/heartline-relay (make relay desktop).
set -euo pipefail
cd "$(dirname "$0")/.."
rooms=${ROOMS:-20}
messages=${MESSAGES:-200000}
settle=${SETTLE:-30}
idle=${IDLE:-30}
app_bin=${APP_BIN:-bin/heartline}
relay_bin=${RELAY_BIN:-bin/heartline-relay}
[ -x "$app_bin" ] && [ -x "$relay_bin" ] || { echo "desktop-bench: run make relay desktop first" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "desktop-bench: kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
export LANG=en_US.UTF-8 HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config
mkdir -p "$HOME"
unset DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$tmp/display" >"$tmp/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/display" ] && break; sleep 0.1; done
export DISPLAY=:$(tr -d '[:space:]' <"$tmp/display")

port=$((20000 + RANDOM % 10000))
"$relay_bin" --listen "127.0.0.1:$port" --stun-port $((port + 10000)) --data-dir "$tmp/relay" --room-create-burst 100 >"$tmp/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# 1. Join the rooms once (saved in the app's settings), then quit.
: >"$tmp/join.cmd"
for i in $(seq 2 "$rooms"); do printf 'join 127.0.0.1:%s room-%02d\n' "$port" "$i" >>"$tmp/join.cmd"; done
echo "wait 3s" >>"$tmp/join.cmd"
echo quit >>"$tmp/join.cmd"
timeout 120 "$app_bin" --profile bench --name Bench --relay "127.0.0.1:$port" --room room-01 --script "$tmp/join.cmd" >"$tmp/join.log" 2>&1

# 2. A long history on the device.
s=$(date +%s.%N)
"$app_bin" --profile bench --seed-history "$messages"
echo "desktop-bench: seeded $messages messages in $(echo "$(date +%s.%N) - $s" | bc) s; history $(du -h "$HOME"/.config/fyne/*bench*/history.db 2>/dev/null | cut -f1 || true)"

# 3. Open the app again (the rooms from the settings) and time the window.
: >"$tmp/run.cmd"
start=$(date +%s%N)
"$app_bin" --profile bench -v --script "$tmp/run.cmd" >"$tmp/run.log" 2>&1 &
app_pid=$!
pids+=($app_pid)
# xdotool's own --sync looks only every 0.5 s: ask every 10 ms instead.
for _ in $(seq 3000); do
	xdotool search --onlyvisible --pid "$app_pid" >/dev/null 2>&1 && break
	sleep 0.01
done
up=$(( ($(date +%s%N) - start) / 1000000 ))
echo "desktop-bench: window visible after ${up} ms (xdotool, polled every 10 ms)"
grep -E "window built|app started|UI loop running" "$tmp/run.log" | sed 's/^/desktop-bench: /' || true
sleep "$settle"
echo "measure $idle" >>"$tmp/run.cmd"
for _ in $(seq $((idle + 60))); do grep -q "msg=measure" "$tmp/run.log" && break; sleep 1; done
grep "msg=measure" "$tmp/run.log" | sed 's/^/desktop-bench: /' || true
ps -o rss=,nlwp= -p "$app_pid" | awk '{printf "desktop-bench: ps: RSS %.0f MB, %d threads\n", $1/1024, $2}'
echo quit >>"$tmp/run.cmd"
wait "$app_pid" 2>/dev/null || true
