# shellcheck shell=bash
# Shared by scripts/dist.sh and scripts/dist-desktop.sh (sourced, not run).
#
# Sets ROOT, DIST, VERSION, COMMIT, SOURCE_DATE_EPOCH and LDFLAGS_X, and
# defines the archive helpers. Archives are reproducible: sorted entries,
# fixed owner and the commit's time as every mtime.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DIST=${DIST_DIR:-$ROOT/dist}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)

# Paths removed however the script ends (staging folders, temporary files
# placed in the source tree for one build).
CLEANUP=("$DIST/.stage")
cleanup() { rm -rf "${CLEANUP[@]}"; }
trap cleanup EXIT

die() {
	echo "dist: $*" >&2
	exit 1
}

# FyneApp.toml is the one source of the version; the same sed as the
# Makefile (metadata_test.go checks that sed and the Go parser agree).
VERSION=$(sed -n 's/^Version *= *"\(.*\)"\r*$/\1/p' FyneApp.toml)
[ -n "$VERSION" ] || die "no Version = \"...\" line in FyneApp.toml"

# The commit both binaries print with --version; "-dirty" when tracked files
# differ from it, so a release is never mistaken for its commit.
COMMIT=${COMMIT:-}
if [ -z "$COMMIT" ] && git rev-parse --git-dir >/dev/null 2>&1; then
	COMMIT=$(git rev-parse --short=7 HEAD 2>/dev/null || true)
	if [ -n "$COMMIT" ] && ! git diff --quiet HEAD -- 2>/dev/null; then
		COMMIT="$COMMIT-dirty"
	fi
fi
LDFLAGS_X="-X github.com/heartline/heartline.Commit=$COMMIT"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# stage_dir NAME: a fresh, empty staging folder $DIST/.stage/NAME.
stage_dir() {
	local d="$DIST/.stage/$1"
	rm -rf "$d"
	mkdir -p "$d"
	echo "$d"
}

# archive NAME FORMAT: packs $DIST/.stage/NAME into $DIST/NAME.tar.gz or
# $DIST/NAME.zip, with NAME/ as the single top-level folder.
archive() {
	local name=$1 format=$2
	local stage="$DIST/.stage"
	find "$stage/$name" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	case $format in
	tar.gz)
		rm -f "$DIST/$name.tar.gz"
		tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
			-C "$stage" -cf - "$name" | gzip -n -9 >"$DIST/$name.tar.gz"
		;;
	zip)
		command -v zip >/dev/null || die "zip is not installed (apt-get install zip)"
		rm -f "$DIST/$name.zip"
		(cd "$stage" && find "$name" -print | LC_ALL=C sort | zip -X -q -@ "$DIST/$name.zip")
		;;
	*) die "unknown archive format $format" ;;
	esac
	rm -rf "${stage:?}/$name"
	rmdir "$stage" 2>/dev/null || true
	echo "dist: $DIST/$name.$format"
}

# write_sums: SHA256SUMS over every archive in $DIST (relay and desktop).
write_sums() {
	(
		cd "$DIST"
		shopt -s nullglob
		local files=(heartline-*.tar.gz heartline-*.zip)
		if [ ${#files[@]} -eq 0 ]; then
			rm -f SHA256SUMS
			return
		fi
		LC_ALL=C sha256sum "${files[@]}" | LC_ALL=C sort -k2 >SHA256SUMS.tmp
		mv SHA256SUMS.tmp SHA256SUMS
	)
	echo "dist: $DIST/SHA256SUMS"
}

# need_main DIR: fail clearly when a binary's package is not there yet.
need_main() {
	local name
	name=$(go list -f '{{.Name}}' "$1" 2>/dev/null || true)
	[ "$name" = main ] || die "$1 is not a main package yet; nothing to build"
}
