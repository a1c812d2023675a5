#!/usr/bin/env bash
# Builds the Heartline desktop app into dist/ (make dist-desktop):
#
#   dist/heartline-<version>-linux-amd64.tar.gz   binary, menu entry, hicolor
#                                                 icons, AppStream metainfo and
#                                                 a Makefile (make install)
#   dist/heartline-<version>-linux-arm64.tar.gz   the same, cross-compiled
#   dist/heartline-<version>-windows-amd64.zip    GUI exe with icon, version
#                                                 info and manifest
#   dist/SHA256SUMS
#
#   scripts/dist-desktop.sh                        # every target the machine can build
#   scripts/dist-desktop.sh linux/amd64 ...        # just these (failing if impossible)
#   DESKTOP_BINARY=bin/heartline scripts/dist-desktop.sh linux/amd64
#                                                  # package a binary you built
#
# The desktop needs cgo. Cross toolchains come from apt (mingw-w64 for
# Windows, gcc-aarch64-linux-gnu and :arm64 libraries for linux/arm64); as
# root with apt the script installs what is missing, otherwise it skips that
# target when building the default set. Cold builds are slow (minutes: Fyne's
# OpenGL binding is C); the Go build cache makes the next ones fast.
# shellcheck source=scripts/dist-common.sh
source "$(dirname "$0")/dist-common.sh"

APPID=$(go run ./scripts/version -field id)
GOTAGS=$(go run ./scripts/version -field gotags)
TAGS="release${GOTAGS:+,$GOTAGS}"
ALL=(linux/amd64 windows/amd64 linux/arm64)
SIZES=(16 22 24 32 48 64 128 256 512)

explicit=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	explicit=0
	targets=("${ALL[@]}")
fi
for t in "${targets[@]}"; do
	[[ " ${ALL[*]} " == *" $t "* ]] || die "unsupported desktop target $t (choose from: ${ALL[*]})"
done
if [ -n "${DESKTOP_BINARY:-}" ]; then
	[ "${targets[*]}" = linux/amd64 ] || die "DESKTOP_BINARY packages one prebuilt binary: give exactly the target linux/amd64"
	[ -x "$DESKTOP_BINARY" ] || die "DESKTOP_BINARY=$DESKTOP_BINARY is not an executable file"
else
	need_main ./desktop
fi

FYNE_DEPS=(libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev)

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

# apt_install PKG...: installs what is missing, as root only.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	can_apt || {
		echo "missing packages: ${missing[*]} (install them as root)" >&2
		return 1
	}
	echo "dist: apt-get install ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

# toolchain TARGET: makes the C cross toolchain for TARGET available; prints
# the reason and fails when it cannot.
toolchain() {
	case $1 in
	linux/amd64) apt_install gcc libc6-dev pkg-config "${FYNE_DEPS[@]}" ;;
	windows/amd64) apt_install gcc-mingw-w64-x86-64 zip ;;
	linux/arm64)
		if ! dpkg --print-foreign-architectures | grep -qx arm64; then
			can_apt || {
				echo "arm64 is not a dpkg architecture here (dpkg --add-architecture arm64, as root)" >&2
				return 1
			}
			dpkg --add-architecture arm64
			apt-get update -q >/dev/null
		fi
		local arm=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
		for p in "${FYNE_DEPS[@]}"; do arm+=("$p:arm64"); done
		apt_install "${arm[@]}"
		;;
	esac
}

# winres DIR: writes a Windows resource object (icon, version info, manifest)
# for the desktop package into DIR/rsrc_windows_amd64.syso.
winres() {
	local dir=$1 name build fileversion
	name=$(go run ./scripts/version -field name)
	build=$(go run ./scripts/version -field build)
	# Windows versions are four numbers; a pre-release suffix is dropped here
	# and kept in the version strings.
	fileversion="$(echo "${VERSION%%-*}" | tr . ' ' | awk '{print $1"."$2"."$3}').$build"
	for s in 16 24 32 48 64 128 256; do cp "assets/icons/$s.png" "$dir/icon$s.png"; done
	cat >"$dir/winres.json" <<EOF
{
  "RT_GROUP_ICON": {"APP": {"0000": ["icon256.png", "icon128.png", "icon64.png", "icon48.png", "icon32.png", "icon24.png", "icon16.png"]}},
  "RT_MANIFEST": {"#1": {"0409": {
    "identity": {"name": "$APPID", "version": "$fileversion"},
    "description": "$name",
    "minimum-os": "win10",
    "execution-level": "as invoker",
    "dpi-awareness": "per monitor v2",
    "long-path-aware": true,
    "use-common-controls-v6": true
  }}},
  "RT_VERSION": {"#1": {"0000": {
    "fixed": {"file_version": "$fileversion", "product_version": "$fileversion"},
    "info": {"0409": {
      "CompanyName": "The $name contributors",
      "FileDescription": "$name",
      "FileVersion": "$VERSION",
      "InternalName": "heartline",
      "OriginalFilename": "heartline.exe",
      "ProductName": "$name",
      "ProductVersion": "$VERSION${COMMIT:+ ($COMMIT)}"
    }}
  }}}
}
EOF
	go run github.com/tc-hib/go-winres@v0.3.3 make --in "$dir/winres.json" --arch amd64 --out "$dir/rsrc"
}

# stage_linux STAGE BINARY: the install tree the archive's Makefile expects.
stage_linux() {
	local stage=$1 bin=$2
	install -m 0755 "$bin" "$stage/heartline"
	install -m 0644 packaging/linux/Makefile "$stage/Makefile"
	install -D -m 0644 "packaging/linux/$APPID.desktop" "$stage/share/applications/$APPID.desktop"
	install -D -m 0644 "packaging/linux/$APPID.metainfo.xml" "$stage/share/metainfo/$APPID.metainfo.xml"
	for s in "${SIZES[@]}"; do
		install -D -m 0644 "assets/icons/$s.png" "$stage/share/icons/hicolor/${s}x$s/apps/$APPID.png"
	done
	if command -v desktop-file-validate >/dev/null; then
		desktop-file-validate "$stage/share/applications/$APPID.desktop"
	fi
	if command -v appstreamcli >/dev/null; then
		appstreamcli validate --no-net "$stage/share/metainfo/$APPID.metainfo.xml" >/dev/null ||
			die "AppStream metainfo does not validate (appstreamcli validate --no-net packaging/linux/$APPID.metainfo.xml)"
	fi
	cat >"$stage/README.txt" <<EOF
Heartline $VERSION (commit ${COMMIT:-unknown}) for Linux

Chat rooms that keep their link alive, on a relay you host yourself.

Install for everyone:   sudo make install            (into /usr/local)
Install just for you:   make install PREFIX=\$HOME/.local
Remove:                 make uninstall  (with the same PREFIX)
Or run it from here:    ./heartline

Needs OpenGL (Mesa) and X11 or XWayland, as every desktop has.
EOF
}

built=()
skipped=()
for t in "${targets[@]}"; do
	os=${t%/*}
	arch=${t#*/}
	name="heartline-$VERSION-$os-$arch"
	if [ -z "${DESKTOP_BINARY:-}" ]; then
		if ! toolchain "$t"; then
			[ $explicit = 1 ] && die "cannot build $t: its C toolchain is missing (see above)"
			echo "dist: skipping $t: its C toolchain is missing (see above)" >&2
			skipped+=("$t")
			continue
		fi
	fi
	stage=$(stage_dir "$name")
	start=$(date +%s)
	ldflags="-s -w $LDFLAGS_X"
	buildenv=(CGO_ENABLED=1 GOOS="$os" GOARCH="$arch")
	case $t in
	linux/arm64) buildenv+=(CC=aarch64-linux-gnu-gcc PKG_CONFIG_PATH=/usr/lib/aarch64-linux-gnu/pkgconfig PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig) ;;
	windows/amd64)
		buildenv+=(CC=x86_64-w64-mingw32-gcc)
		ldflags="$ldflags -H=windowsgui"
		;;
	esac

	case $os in
	linux)
		bin=${DESKTOP_BINARY:-}
		if [ -z "$bin" ]; then
			bin="$stage/.heartline"
			env "${buildenv[@]}" go build -trimpath -tags "$TAGS" -ldflags "$ldflags" -o "$bin" ./desktop
			# A binary for this machine proves --version reports FyneApp.toml's version.
			if [ "$t" = "$(go env GOHOSTOS)/$(go env GOHOSTARCH)" ]; then
				got=$("$bin" --version 2>/dev/null) || die "heartline --version failed"
				[[ "$got" == *"$VERSION"* ]] || die "heartline --version printed '$got', expected version $VERSION"
			fi
		fi
		stage_linux "$stage" "$bin"
		rm -f "$stage/.heartline"
		format=tar.gz
		;;
	windows)
		res=$(mktemp -d)
		CLEANUP+=("$res")
		winres "$res"
		# go build links every .syso in the package folder; the file is
		# there only for this build (and *.syso is git-ignored).
		syso=desktop/rsrc_windows_amd64.syso
		[ -e "$syso" ] && die "$syso already exists; remove it (left by another build?)"
		CLEANUP+=("$ROOT/$syso")
		cp "$res/rsrc_windows_amd64.syso" "$syso"
		env "${buildenv[@]}" go build -trimpath -tags "$TAGS" -ldflags "$ldflags" -o "$stage/heartline.exe" ./desktop
		rm -rf "$syso" "$res"
		cat >"$stage/README.txt" <<EOF
Heartline $VERSION (commit ${COMMIT:-unknown}) for Windows

Chat rooms that keep their link alive, on a relay you host yourself.
Unpack anywhere and run heartline.exe. Settings are kept per user.
EOF
		format=zip
		;;
	esac
	echo "dist: built $t in $(($(date +%s) - start)) s"
	archive "$name" "$format"
	built+=("$t")
done

write_sums
echo "dist: desktop built for: ${built[*]:-nothing}${skipped:+; skipped: ${skipped[*]}}"
[ ${#built[@]} -gt 0 ] || exit 1
