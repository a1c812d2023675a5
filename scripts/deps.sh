#!/usr/bin/env bash
# Installs the Debian packages Heartline's build and tests need, only the ones
# that are missing. As root it runs apt-get itself; otherwise it prints the
# command to run and fails, so a missing header never turns into a cryptic cgo error.
set -euo pipefail

packages=(
  # Fyne (cgo, OpenGL, X11): see TOOLCHAIN notes in docs/ARCHITECTURE.md
  gcc libc6-dev pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev
  libxinerama-dev libxi-dev libxxf86vm-dev
  # real windows and screenshots under a virtual display
  xvfb xdotool imagemagick
  # network-namespace tests (NAT, dropped paths, a laptop moving between networks; sysctl)
  iproute2 iptables procps
  # packaging: .desktop and AppStream validation, Windows zip archives, and the
  # checks of the reverse-proxy examples and shell scripts
  desktop-file-utils appstream zip nginx-light caddy shellcheck
  # the Redis engine's tests (each starts its own redis-server in a temp dir;
  # the system service is not used) and make run-cluster
  redis-server
  # scripts (make run, make screenshots)
  curl
  # the browser client's tests and pictures (chromedp drives it headless)
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: not root; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
