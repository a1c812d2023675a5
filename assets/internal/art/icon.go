package art

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"sort"
	"strconv"
)

// IconSizes are the hicolor theme sizes the app icon is drawn at. Each size
// is painted from the vector shapes, not scaled from a bitmap, so small icons
// stay crisp.
var IconSizes = []int{16, 22, 24, 32, 48, 64, 128, 256, 512}

// Icon paints the app icon at n x n: a coral heart on a deep-indigo rounded
// square, crossed by a white heartbeat line.
func Icon(n int) *image.RGBA {
	c := NewCanvas(n)
	small := n <= 32
	margin := 0.06
	if small {
		margin = 0.02 // every pixel counts at 16 px
	}
	tile := RoundRect(0.5, 0.5, 0.5-margin, 0.5-margin, 0.2*(0.5-margin))
	c.Fill(tile, VGradient{Top: Hex("#34376e"), Bottom: Hex("#1b1c3a"), Y0: margin, Y1: 1 - margin, N: n})

	heartW := 0.66
	if small {
		heartW = 0.78
	}
	heart := Heart(0.5, 0.52, heartW)
	c.Fill(heart, VGradient{Top: Hex("#ff7a8c"), Bottom: Hex("#e8364f"), Y0: 0.2, Y1: 0.85, N: n})

	// The pulse line: flat, a small dip, a tall spike, a dip, flat again. It
	// keeps at least 1.5 px of width so it survives at 16 px.
	w := math.Max(0.022, c.Px(0.8))
	y := 0.53
	var pts []float64
	if small {
		pts = []float64{0.12, y, 0.36, y, 0.46, 0.3, 0.56, 0.74, 0.64, y, 0.88, y}
	} else {
		pts = []float64{0.13, y, 0.33, y, 0.38, 0.47, 0.45, 0.68, 0.53, 0.29, 0.6, 0.62, 0.64, y, 0.87, y}
	}
	// A thin dark halo keeps the white line readable where it crosses the heart.
	c.Soft(Polyline(w+c.Px(1.5), pts...), Hex("#7a1c3050"), 2)
	c.FillColor(Polyline(w, pts...), Hex("#ffffff"))
	return c.Image()
}

// File is one generated asset: its path under assets/ and its painter.
type File struct {
	Path   string
	Render func() image.Image
}

// Files lists every generated asset, sorted by path.
func Files() []File {
	var fs []File
	for name := range Avatars {
		fs = append(fs, File{Path: "avatars/" + name + ".png", Render: func() image.Image {
			img, _ := Avatar(name)
			return img
		}})
	}
	for _, n := range IconSizes {
		fs = append(fs, File{Path: "icons/" + strconv.Itoa(n) + ".png", Render: func() image.Image { return Icon(n) }})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	return fs
}

// Encode writes img as a maximally compressed PNG; the bytes end up embedded
// in both binaries, so size matters more than encoding time.
func Encode(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
