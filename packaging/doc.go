// Package packaging holds no code: its folder carries what ships around the
// two binaries (the Linux desktop entry, AppStream metainfo and install
// Makefile, the systemd unit, the container recipe and reverse-proxy
// examples), and its tests check those files with the tools that consume
// them and against FyneApp.toml and the relay's defaults.
//
// The archives themselves are built by scripts/dist.sh (relay) and
// scripts/dist-desktop.sh (desktop app).
package packaging
