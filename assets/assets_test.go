package assets

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/heartline/heartline/assets/internal/art"
)

// The protocol's avatar reference is "builtin:<name>"; names are short,
// lowercase, and safe in a URL path and a file name.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

func decode(t *testing.T, what string, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", what, err)
	}
	return img
}

func TestBuiltinAvatars(t *testing.T) {
	names := BuiltinAvatarNames()
	if len(names) < 8 {
		t.Fatalf("want at least 8 built-in avatars, have %d: %v", len(names), names)
	}
	if !slices.IsSorted(names) {
		t.Errorf("names not sorted: %v", names)
	}
	if !slices.Contains(names, DefaultAvatar) {
		t.Errorf("%q missing from %v; the protocol promises builtin:default", DefaultAvatar, names)
	}
	seen := map[string]string{}
	for _, name := range names {
		if !validName.MatchString(name) {
			t.Errorf("avatar name %q is not a valid protocol name (a-z0-9-, 1-32 chars)", name)
		}
		data, ok := BuiltinAvatar(name)
		if !ok {
			t.Fatalf("BuiltinAvatar(%q) not found though listed", name)
		}
		img := decode(t, name, data)
		if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
			t.Errorf("%s is %dx%d, want 256x256", name, b.Dx(), b.Dy())
		}
		// Avatars are shown cropped to circles and squares alike: the corners
		// must be opaque background, not holes.
		if _, _, _, a := img.At(0, 0).RGBA(); a != 0xffff {
			t.Errorf("%s has a transparent corner", name)
		}
		if other, dup := seen[string(data)]; dup {
			t.Errorf("%s and %s are the same picture", name, other)
		}
		seen[string(data)] = name
	}
}

func TestBuiltinAvatarsLookDifferent(t *testing.T) {
	// Two avatars with the same background colour are hard to tell apart in a
	// member list; every background must be clearly distinct.
	bgs := map[string]color.NRGBA{}
	for _, name := range BuiltinAvatarNames() {
		data, _ := BuiltinAvatar(name)
		bg := color.NRGBAModel.Convert(decode(t, name, data).At(2, 2)).(color.NRGBA)
		for other, c := range bgs {
			if dist(bg, c) < 40 {
				t.Errorf("%s and %s have nearly the same background %v / %v", name, other, bg, c)
			}
		}
		bgs[name] = bg
	}
}

func dist(a, b color.NRGBA) int {
	abs := func(x int) int { return max(x, -x) }
	return abs(int(a.R)-int(b.R)) + abs(int(a.G)-int(b.G)) + abs(int(a.B)-int(b.B))
}

func TestBuiltinAvatarUnknown(t *testing.T) {
	for _, name := range []string{"", "nope", "../icons/16", "default.png", "Default", "avatars/default"} {
		if _, ok := BuiltinAvatar(name); ok {
			t.Errorf("BuiltinAvatar(%q) found something; want not found", name)
		}
	}
}

func TestNamesAreCopies(t *testing.T) {
	names := BuiltinAvatarNames()
	names[0] = "mutated"
	if BuiltinAvatarNames()[0] == "mutated" {
		t.Fatal("BuiltinAvatarNames exposes its internal slice")
	}
	sizes := IconSizes()
	sizes[0] = -1
	if IconSizes()[0] == -1 {
		t.Fatal("IconSizes exposes its internal slice")
	}
}

func TestIcon(t *testing.T) {
	img := decode(t, "Icon()", Icon())
	if b := img.Bounds(); b.Dx() != IconSize || b.Dy() != IconSize {
		t.Errorf("Icon() is %dx%d, want %dx%d", b.Dx(), b.Dy(), IconSize, IconSize)
	}
	want := []int{16, 22, 24, 32, 48, 64, 128, 256, 512}
	if got := IconSizes(); !slices.Equal(got, want) {
		t.Errorf("IconSizes() = %v, want the hicolor sizes %v", got, want)
	}
	for _, n := range IconSizes() {
		data, ok := IconPNG(n)
		if !ok {
			t.Fatalf("IconPNG(%d) not found though listed", n)
		}
		img := decode(t, "icon", data)
		if b := img.Bounds(); b.Dx() != n || b.Dy() != n {
			t.Errorf("icon %d is %dx%d", n, b.Dx(), b.Dy())
		}
		// The heart sits in the middle at every size: centre pixel opaque.
		if _, _, _, a := img.At(n/2, n/2).RGBA(); a != 0xffff {
			t.Errorf("icon %d: centre is not opaque", n)
		}
	}
	if _, ok := IconPNG(100); ok {
		t.Error("IconPNG(100) found; no icon is drawn at 100 px")
	}
}

// TestGeneratedFilesUpToDate repaints every asset and compares it with the
// embedded file, so artwork edits cannot ship without `go generate ./assets`.
// It compares pixels rather than PNG bytes: a newer Go may compress
// differently, and another CPU may fuse floating-point operations (FMA) and
// move an edge pixel by one level; neither is a stale picture, so one level
// per channel is tolerated. (Encoding is also most of the cost under -race.)
func TestGeneratedFilesUpToDate(t *testing.T) {
	var want []string
	for _, f := range art.Files() {
		want = append(want, f.Path)
		embedded, err := files.ReadFile(f.Path)
		if err != nil {
			t.Errorf("%s is not embedded; run go generate ./assets", f.Path)
			continue
		}
		if x, y, ok := samePixels(decode(t, f.Path, embedded), f.Render(), 1); !ok {
			t.Errorf("%s is out of date with the generator (first difference at %d,%d); run go generate ./assets", f.Path, x, y)
		}
	}
	var have []string
	for _, name := range BuiltinAvatarNames() {
		have = append(have, "avatars/"+name+".png")
	}
	for _, n := range IconSizes() {
		have = append(have, "icons/"+strconv.Itoa(n)+".png")
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Errorf("embedded files %v, generator paints %v; run go generate ./assets", have, want)
	}
}

func samePixels(a, b image.Image, tol int) (x, y int, ok bool) {
	if a.Bounds() != b.Bounds() {
		return 0, 0, false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			// Premultiplied, so invisible differences in transparent
			// pixels do not count.
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8), int(a1>>8) - int(a2>>8)} {
				if d > tol || d < -tol {
					return x, y, false
				}
			}
		}
	}
	return 0, 0, true
}
