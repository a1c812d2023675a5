#!/usr/bin/env bash
# Builds the relay for every supported platform into dist/ (make dist):
#
#   dist/heartline-relay-<version>-<os>-<arch>.tar.gz   (.zip for Windows)
#   dist/SHA256SUMS
#
# Each archive holds the static binary, a README, the systemd unit, the
# reverse-proxy examples and docs/OPERATIONS.md. (The container recipe needs the
# source tree: packaging/container/Containerfile.)
#
#   scripts/dist.sh                   # every platform
#   scripts/dist.sh linux/amd64 ...   # just these
#
# Environment: DIST_DIR (default ./dist), COMMIT (default from git),
# SOURCE_DATE_EPOCH (default the commit time; archive timestamps).
# shellcheck source=scripts/dist-common.sh
source "$(dirname "$0")/dist-common.sh"

ALL=(linux/amd64 linux/arm64 linux/arm darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=("${ALL[@]}")
	# A full build replaces every relay archive, including older versions'.
	rm -f "$DIST"/heartline-relay-*.tar.gz "$DIST"/heartline-relay-*.zip
fi
for t in "${targets[@]}"; do
	[[ " ${ALL[*]} " == *" $t "* ]] || die "unsupported target $t (choose from: ${ALL[*]})"
done

need_main ./relay

# describe FILE: its line in the README's file list.
describe() {
	case $1 in
	heartline-relay | heartline-relay.exe) echo "the relay: one static binary" ;;
	heartline-relay.service) echo "hardened systemd unit (install steps inside)" ;;
	proxy/nginx.conf) echo "nginx in front: TLS, websocket upgrade, timeouts" ;;
	proxy/Caddyfile) echo "Caddy in front: automatic TLS" ;;
	proxy/nginx-relays.conf) echo "nginx in front of several relays on one Redis" ;;
	proxy/Caddyfile-relays) echo "Caddy in front of several relays on one Redis, /readyz checks" ;;
	OPERATIONS.md) echo "flags, endpoints, metrics, upgrades, backups, firewall" ;;
	LICENSE) echo "the license" ;;
	*) echo "" ;;
	esac
}

# readme STAGE OS EXE: README.txt for the files staged so far.
readme() {
	local stage=$1 os=$2 exe=$3 pretty
	case $os in
	linux) pretty=Linux ;;
	darwin) pretty=macOS ;;
	windows) pretty=Windows ;;
	freebsd) pretty=FreeBSD ;;
	*) pretty=$os ;;
	esac
	cat <<EOF
Heartline relay $VERSION (commit ${COMMIT:-unknown}) for $pretty

A self-hosted chat relay: rooms, heartbeats, durable recent history, STUN,
health checks and Prometheus metrics. The Heartline desktop app joins
ws://HOST:8080/ws (wss:// behind a TLS reverse proxy).

Try it:
  ./$exe --data-dir ./heartline-data
  ./$exe --help        every flag, its HEARTLINE_* variable and default
  ./$exe --version

Files:
EOF
	(cd "$stage" && find . -type f ! -name README.txt | sed 's|^\./||' | LC_ALL=C sort) | while read -r f; do
		printf '  %-25s %s\n' "$f" "$(describe "$f")"
	done
	cat <<'EOF'

Data: history and uploaded avatars live in --data-dir. Back that folder up;
to upgrade, stop the relay, replace the binary and start it again.
EOF
}

for t in "${targets[@]}"; do
	os=${t%/*}
	arch=${t#*/}
	name="heartline-relay-$VERSION-$os-$arch"
	exe=heartline-relay
	format=tar.gz
	if [ "$os" = windows ]; then
		exe=heartline-relay.exe
		format=zip
	fi
	goarm=
	[ "$arch" = arm ] && goarm=7

	stage=$(stage_dir "$name")
	start=$(date +%s)
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=$goarm \
		go build -trimpath -ldflags "-s -w $LDFLAGS_X" -o "$stage/$exe" ./relay
	echo "dist: built $t in $(($(date +%s) - start)) s"

	# The binary for this machine proves --version reports FyneApp.toml's version.
	if [ "$os/$arch" = "$(go env GOHOSTOS)/$(go env GOHOSTARCH)" ]; then
		got=$("$stage/$exe" --version 2>&1) || die "$exe --version failed: $got"
		[[ "$got" == *"$VERSION"* ]] || die "$exe --version printed '$got', expected version $VERSION"
	fi

	if [ "$os" = linux ]; then
		install -m 0644 packaging/systemd/heartline-relay.service "$stage/"
	fi
	mkdir -p "$stage/proxy"
	install -m 0644 packaging/proxy/nginx.conf packaging/proxy/Caddyfile \
		packaging/proxy/nginx-relays.conf packaging/proxy/Caddyfile-relays "$stage/proxy/"
	for doc in docs/OPERATIONS.md LICENSE; do
		if [ -f "$doc" ]; then install -m 0644 "$doc" "$stage/"; fi
	done
	readme "$stage" "$os" "$exe" >"$stage/README.txt"
	archive "$name" "$format"
done

write_sums
