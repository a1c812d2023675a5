// Package assets holds Heartline's built-in pictures: the avatars every relay
// offers as `builtin:<name>` and the app icon in the hicolor theme sizes.
//
// The PNG files are generated from code in internal/art (original artwork
// drawn with the standard library); regenerate them with `go generate
// ./assets`. This package only embeds the files, so the relay can import it
// without pulling in Fyne or the drawing code.
package assets

//go:generate go run ./internal/gen -out .

import (
	"embed"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

//go:embed avatars/*.png icons/*.png
var files embed.FS

// DefaultAvatar is the built-in avatar every relay has (`builtin:default`).
const DefaultAvatar = "default"

// IconSize is the size in pixels of the picture Icon returns.
const IconSize = 512

var (
	avatarNames = list("avatars")
	iconSizes   = sizes()
)

func list(dir string) []string {
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		panic("assets: " + err.Error()) // the embed pattern guarantees the directory
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".png"))
	}
	slices.Sort(names)
	return names
}

func sizes() []int {
	var out []int
	for _, name := range list("icons") {
		n, err := strconv.Atoi(name)
		if err != nil {
			panic("assets: icon file not named after its size: " + name)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// BuiltinAvatarNames returns the names of the built-in avatars, sorted. It
// always includes DefaultAvatar. The caller may modify the returned slice.
func BuiltinAvatarNames() []string { return slices.Clone(avatarNames) }

// BuiltinAvatar returns the named built-in avatar as a 256 x 256 PNG. The
// name is the part after "builtin:"; ok is false for an unknown name. Each
// call returns a fresh copy.
func BuiltinAvatar(name string) (png []byte, ok bool) {
	if !slices.Contains(avatarNames, name) {
		return nil, false // also keeps "../x" and friends away from the FS
	}
	return mustRead(path.Join("avatars", name+".png")), true
}

// Icon returns the app icon as a 512 x 512 PNG (a fresh copy).
func Icon() []byte {
	b, _ := IconPNG(IconSize)
	return b
}

// IconSizes returns the sizes (in pixels, ascending) at which the app icon is
// available: the hicolor theme sizes from 16 to 512.
func IconSizes() []int { return slices.Clone(iconSizes) }

// IconPNG returns the app icon drawn for size x size pixels; ok is false if
// the icon is not drawn at that size (see IconSizes).
func IconPNG(size int) (png []byte, ok bool) {
	if !slices.Contains(iconSizes, size) {
		return nil, false
	}
	return mustRead("icons/" + strconv.Itoa(size) + ".png"), true
}

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("assets: " + err.Error()) // listed at init, so it is embedded
	}
	return b
}
