#!/usr/bin/env bash
# `make screenshots`: what a person sees, on a virtual display.
#
# Starts a relay and two Heartline windows (Alice with a built-in avatar in the
# dark theme, Bob with initials in the light theme) under Xvfb, lets them
# talk, drops the link by stopping the relay and brings it back, and saves PNGs
# of the key states into ./screenshots/ (ignored by git):
#
#   01-chat-alice.png        the room: avatars, names, times, grouping, a link, members
#   02-chat-bob.png          the same room from Bob's side (light theme, initials)
#   03-jump-to-latest.png    Alice scrolled up while Bob writes: "Jump to latest (N new)"
#   04-reconnecting.png      relay stopped: banner with countdown and Retry now,
#                            a message typed meanwhile waiting in the outbox
#   05-reconnected.png       relay back: banner gone, the waiting message sent
#   06-members-away.png      Bob's side: Carol's link dropped, she shows as away
#   07-settings.png          the settings screen
#   08-diagnostics.png       diagnostics: the drop, and a link check made after it
#                            (TCP, WebSocket, heartbeat, UDP to the relay's STUN
#                            ports: public address, NAT mapping)
#   09-join.png              the first-run join screen
#   10-failed-retry.png      a message the relay refused (too long): reason and Retry
#   11-name-taken.png        a second "Bob Stone" is refused: stopped, with what to do
#   12-restarted.png         Alice discarded the refused message, closed the app
#                            and opened it again: what Bob wrote meanwhile is there
#   13-rooms.png             the sidebar: five rooms on two relays, unread counts,
#                            a mention marker (desktop_rooms_shots)
#   14-switcher.png          the quick switcher (Ctrl+K) narrowing the rooms
#   15-search.png            a search of every room, the matches highlighted
#   16-offline.png           both relays down, the app opened again: every room's
#                            messages from the device's own history
#   17-privacy.png           settings: how long messages stay on this computer,
#                            clearing a room's, where they are kept
#   web-01..11-*.png         the browser client (scripts/webshots): join form and
#                            room at desktop width (1280x800) and phone width
#                            (390x844), members panel, "N new", the banner while
#                            the relay is down with a message waiting, reconnected,
#                            and the dark theme (the browser's prefers-color-scheme)
#
# Needs: Xvfb, xdotool, ImageMagick (apt-get install xvfb xdotool imagemagick)
# and the build packages of the desktop app. Uses APP_BIN and RELAY_BIN, else
# bin/heartline and bin/heartline-relay when present (make screenshots builds
# them), else builds them into a temporary folder. Nothing outside the
# temporary folder and ./screenshots is touched: the apps keep their settings
# under a temporary HOME.
#
# Several runs may share a machine: unless SCREENSHOTS_PORT,
# SCREENSHOTS_STUN_PORT or SCREENSHOTS_DISPLAY say otherwise, the relay's TCP
# port and its two STUN UDP ports are picked at random (and picked again if
# taken), and Xvfb takes the first free display.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${SCREENSHOTS_DIR:-screenshots}
port=${SCREENSHOTS_PORT:-}
stun_port=${SCREENSHOTS_STUN_PORT:-}
display=${SCREENSHOTS_DISPLAY:-}

for tool in Xvfb xdotool import; do
  command -v "$tool" >/dev/null || { echo "screenshots: $tool is missing (apt-get install xvfb xdotool imagemagick)" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

relay_bin=${RELAY_BIN:-bin/heartline-relay}
app_bin=${APP_BIN:-bin/heartline}
if [ ! -x "$relay_bin" ] || [ ! -x "$app_bin" ]; then
  echo "screenshots: building the relay and the app (a first desktop build takes a few minutes)"
  go build -o "$tmp/heartline-relay" ./relay
  go build -o "$tmp/heartline" ./desktop
  relay_bin=$tmp/heartline-relay
  app_bin=$tmp/heartline
fi
mkdir -p "$out"
# The browser pictures' driver, built before HOME moves (Go's caches live there).
webshots=
if command -v chromium >/dev/null; then
  go build -o "$tmp/webshots" ./scripts/webshots
  webshots=$tmp/webshots
fi

export LANG=en_US.UTF-8 HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config
mkdir -p "$HOME"
unset DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY
if [ -n "$display" ]; then
  Xvfb "$display" -screen 0 2100x760x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
  pids+=($!)
else
  # -displayfd: Xvfb picks a free display and writes its number.
  Xvfb -displayfd 3 -screen 0 2100x760x24 -nolisten tcp 3>"$tmp/display" >"$tmp/xvfb.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$tmp/display" ] && break; sleep 0.1; done
  [ -s "$tmp/display" ] || { echo "screenshots: Xvfb did not start:" >&2; cat "$tmp/xvfb.log" >&2; exit 1; }
  display=:$(tr -d '[:space:]' <"$tmp/display")
fi
export DISPLAY=$display
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done

relay_pid=
# try_relay starts the relay on $port (TCP) and $stun_port, $stun_port+1
# (UDP) and waits until it is ready; it fails if the relay exits first.
try_relay() {
  "$relay_bin" --listen "127.0.0.1:$port" --stun-port "$stun_port" --data-dir "$tmp/relay-data" \
    --heartbeat-interval 2s --heartbeat-timeout 5s --grace 120s >>"$tmp/relay.log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$relay_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_relay starts the relay; the first time, on ports picked at random
# unless given (again if another program holds them), later on the same ones.
fixed_ports=${port:+yes}
start_relay() {
  for _ in $(seq 10); do
    if [ -z "$fixed_ports" ]; then
      port=${SCREENSHOTS_PORT:-$((20000 + RANDOM % 10000))}
      stun_port=${SCREENSHOTS_STUN_PORT:-$((30000 + RANDOM % 10000))}
    fi
    : "${stun_port:=$((port + 1))}"
    if try_relay; then
      fixed_ports=yes
      return 0
    fi
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
    [ -n "$fixed_ports" ] && break
  done
  echo "screenshots: the relay did not start (TCP $port, STUN UDP $stun_port):" >&2
  cat "$tmp/relay.log" >&2
  exit 1
}

# app NAME PROFILE X ARGS... starts a window at x=X and waits for it.
app() {
  local name=$1 profile=$2 x=$3
  shift 3
  : >"$tmp/$profile.cmd"
  "$app_bin" --profile "$profile" --name "$name" --relay "127.0.0.1:$port" --room lobby \
    --size 1040x740 --script "$tmp/$profile.cmd" "$@" >"$tmp/$profile.log" 2>&1 &
  pids+=($!)
  eval "${profile}_pid=$!"
  local wid
  wid=$(xdotool search --sync --onlyvisible --pid "$!" 2>/dev/null | head -1)
  xdotool windowmove "$wid" "$x" 0
  eval "${profile}_wid=$wid"
}

say() { echo "say $2" >>"$tmp/$1.cmd"; }
cmd() { echo "$2" >>"$tmp/$1.cmd"; }
shot() { # shot PROFILE FILE
  local wid_var="${1}_wid"
  sleep 0.4
  import -window "${!wid_var}" "$out/$2"
  echo "screenshots: $out/$2"
}

start_relay
app "Alice Chen" alice 0 --avatar fox --theme dark
app "Bob Stone" bob 1050 --avatar none --theme light
sleep 2

say alice "Morning! Is the relay on the new box yet?"
sleep 0.6
say bob "Yes, since last night. Same address as before."
sleep 0.6
say bob "It keeps 1000 messages per room, so nothing gets lost if you drop off for a while."
sleep 0.6
say alice "Great. I'll point the office machines at it."
say alice "Release notes are at https://example.org/heartline/releases if anyone asks."
sleep 0.6
say bob "Two things for the checklist:\n- open port $port on the firewall\n- the STUN port too, for diagnostics"
sleep 1.5
shot alice 01-chat-alice.png
shot bob 02-chat-bob.png

# Alice scrolls up to read; Bob keeps writing.
for i in $(seq 1 14); do say alice "Scrolling test line $i: the list keeps its place while you read older messages."; done
sleep 4
cmd alice "scroll up"
sleep 0.5
say bob "Alice, did you see the backup schedule?"
sleep 0.4
say bob "It runs at 02:00 now."
sleep 0.4
say bob "And the relay restarts itself after updates."
sleep 1.5
shot alice 03-jump-to-latest.png

# A third member whose link drops: she turns away (and would leave after the grace).
app "Carol Diaz" carol 0 --avatar owl --theme dark
sleep 2
say carol "Hi both, joining from the train."
sleep 1
kill -KILL "$carol_pid" # no bye: the relay sees the socket close
wait "$carol_pid" 2>/dev/null || true

# Drop the link: stop the relay; the banner appears after its grace period.
kill "$relay_pid"
wait "$relay_pid" 2>/dev/null || true
sleep 1
say alice "Typed while the relay is down: this waits in the outbox."
sleep 2.5
xdotool windowraise "$alice_wid"
shot alice 04-reconnecting.png

start_relay
# The next reconnect attempt may still be seconds away: "Retry now" for both.
cmd alice retry
cmd bob retry
sleep 4
shot alice 05-reconnected.png
shot bob 06-members-away.png

cmd alice "show settings"
sleep 1
shot alice 07-settings.png
# The check made when the link dropped found the relay down; with the link
# back, a new check reaches the relay's STUN ports (public address, NAT).
cmd alice "show diagnostics"
cmd alice check
sleep 5
shot alice 08-diagnostics.png

# A first run: no saved settings, no flags.
"$app_bin" --profile newcomer --size 1040x740 >"$tmp/newcomer.log" 2>&1 &
newcomer_pid=$!
pids+=($!)
newcomer_wid=$(xdotool search --sync --onlyvisible --pid "$!" | head -1)
xdotool windowmove "$newcomer_wid" 1050 0
sleep 1.5
shot newcomer 09-join.png

# A message over the relay's limit is refused: it stays, marked, with Retry.
cmd alice "show room"
printf 'say %s\n' "$(printf 'This paragraph is far too long. %.0s' $(seq 1 130))" >>"$tmp/alice.cmd"
sleep 2
shot alice 10-failed-retry.png

# Someone else picks a name already in the room: the relay refuses for good.
kill "$newcomer_pid" 2>/dev/null || true
app "Bob Stone" bob2 1050 --avatar bear --theme light
sleep 3
shot bob2 11-name-taken.png

# Alice throws the refused message away and closes the app; Bob writes on;
# Alice opens the app again (same settings) and finds what she missed.
cmd alice discard
cmd alice quit
wait "$alice_pid" 2>/dev/null || true
for i in 1 2 3 4 5 6; do say bob "While you were away ($i of 6): the relay keeps these until you come back."; done
sleep 3
app "Alice Chen" alice 0 --avatar fox --theme dark
sleep 2.5
shot alice 12-restarted.png

import -window root "$out/00-both-windows.png"

# desktop_rooms_shots: several rooms on two relays, the quick switcher,
# search, and the app opened with the relays down (local history). Kept
# in one function (other parts of this script are edited by others).
desktop_rooms_shots() {
  local port2 relay2_pid=
  for _ in $(seq 10); do
    port2=$((20000 + RANDOM % 10000))
    "$relay_bin" --listen "127.0.0.1:$port2" --stun-port "$((port2 + 10000))" --data-dir "$tmp/relay2-data" \
      --heartbeat-interval 2s --heartbeat-timeout 5s >>"$tmp/relay2.log" 2>&1 &
    relay2_pid=$!
    pids+=("$relay2_pid")
    for _ in $(seq 100); do
      curl -fsS "http://127.0.0.1:$port2/readyz" >/dev/null 2>&1 && break 2
      kill -0 "$relay2_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$relay2_pid" 2>/dev/null || true
  done
  curl -fsS "http://127.0.0.1:$port2/readyz" >/dev/null || { echo "screenshots: the second relay did not start" >&2; cat "$tmp/relay2.log" >&2; exit 1; }

  for who in alice bob; do
    cmd "$who" "join 127.0.0.1:$port design"
    cmd "$who" "join 127.0.0.1:$port ops"
    cmd "$who" "join 127.0.0.1:$port2 support"
    cmd "$who" "join 127.0.0.1:$port2 random"
  done
  cmd alice "select lobby"
  sleep 4
  cmd bob "select design"
  say bob "New icons are in the shared folder, ticket 4410 has the list."
  say bob "The dark theme needs one more pass on the sidebar."
  cmd bob "select support"
  say bob "@Alice Chen can you look at ticket 4411? The customer's relay drops every night at 02:00."
  say bob "Their logs say heartbeat timeout, so it is the network, not the relay."
  cmd bob "select random"
  for i in 1 2 3 4 5 6 7; do say bob "Lunch poll, option $i: noodles, again."; done
  cmd bob "select ops"
  say bob "Backups of both relays ran fine last night."
  sleep 3
  shot alice 13-rooms.png

  cmd alice "switcher s"
  sleep 1.5
  shot alice 14-switcher.png
  cmd alice close

  cmd alice "search all ticket"
  sleep 1.5
  shot alice 15-search.png
  cmd alice close

  # Both relays go away; Alice closes the app and opens it again.
  kill "$relay_pid" "$relay2_pid" 2>/dev/null || true
  wait "$relay_pid" "$relay2_pid" 2>/dev/null || true
  cmd alice quit
  wait "$alice_pid" 2>/dev/null || true
  app "Alice Chen" alice 0 --avatar fox --theme dark
  cmd alice "select support"
  sleep 3
  shot alice 16-offline.png
  cmd alice "show settings"
  cmd alice "scroll bottom"
  sleep 1
  shot alice 17-privacy.png
}
desktop_rooms_shots
# The browser client, at desktop and phone width, from its own scripted
# scenario (a relay in that process, two engine members writing, two
# browsers joining, the relay stopped and started again): web-*.png.
if [ -n "$webshots" ]; then
  "$webshots" -out "$out"
else
  echo "screenshots: no chromium, so no browser pictures (apt-get install chromium)" >&2
fi
echo "screenshots: done; $(ls "$out"/*.png | wc -l) pictures in $out/"
