// Package art draws Heartline's built-in pictures (avatars and the app icon) in
// code, so the artwork is reproducible and reviewable as source.
//
// Shapes are signed distance functions in unit coordinates (the picture is the
// square [0,1]x[0,1], y pointing down). Rasterising a shape turns the distance
// at each pixel centre into coverage, which gives anti-aliased edges at any
// size; the coverage mask is then composited with image/draw.
package art

import (
	"image"
	"image/color"
	"image/draw"
	"math"
)

// SDF is a signed distance function in unit coordinates: negative inside the
// shape, positive outside, zero on its edge.
type SDF func(x, y float64) float64

// Canvas is a square picture being painted.
type Canvas struct {
	img *image.RGBA
	n   int
}

// NewCanvas returns a transparent n x n canvas.
func NewCanvas(n int) *Canvas {
	return &Canvas{img: image.NewRGBA(image.Rect(0, 0, n, n)), n: n}
}

// Size is the canvas edge length in pixels.
func (c *Canvas) Size() int { return c.n }

// Image returns the painted picture.
func (c *Canvas) Image() *image.RGBA { return c.img }

// Px converts a length in pixels into unit coordinates, for strokes that must
// stay visible at small sizes.
func (c *Canvas) Px(p float64) float64 { return p / float64(c.n) }

// mask rasterises s into a coverage mask. soft widens the edge ramp (in
// pixels) for blurred shapes such as shadows; 1 gives a crisp anti-aliased edge.
func (c *Canvas) mask(s SDF, soft float64) *image.Alpha {
	m := image.NewAlpha(c.img.Rect)
	n := float64(c.n)
	// Most of a picture is far from any given shape's edge. Probing the
	// middle of each block first lets whole blocks be filled or skipped; the
	// margin is generous because some distances (ellipses) are approximate.
	const block = 8
	skip := 1.5*block*math.Sqrt2/2 + soft
	for by := 0; by < c.n; by += block {
		for bx := 0; bx < c.n; bx += block {
			x1, y1 := min(bx+block, c.n), min(by+block, c.n)
			d := s(float64(bx+x1)/2/n, float64(by+y1)/2/n) * n
			if d > skip {
				continue
			}
			for y := by; y < y1; y++ {
				for x := bx; x < x1; x++ {
					cov := 1.0
					if d >= -skip {
						cov = 0.5 - s((float64(x)+0.5)/n, (float64(y)+0.5)/n)*n/soft
					}
					if cov <= 0 {
						continue
					}
					m.Pix[y*m.Stride+x] = uint8(math.Round(min(cov, 1) * 255))
				}
			}
		}
	}
	return m
}

// Fill paints s with src (a colour or a gradient), over what is already there.
func (c *Canvas) Fill(s SDF, src image.Image) {
	draw.DrawMask(c.img, c.img.Rect, src, image.Point{}, c.mask(s, 1), image.Point{}, draw.Over)
}

// FillColor paints s with a solid colour.
func (c *Canvas) FillColor(s SDF, col color.Color) {
	c.Fill(s, image.NewUniform(col))
}

// Soft paints s with a blurred edge blur pixels wide (shadows, blush).
func (c *Canvas) Soft(s SDF, col color.Color, blur float64) {
	draw.DrawMask(c.img, c.img.Rect, image.NewUniform(col), image.Point{}, c.mask(s, blur), image.Point{}, draw.Over)
}

// Hex parses "#rrggbb" or "#rrggbbaa"; it panics on a typo because colours
// are constants of the artwork, caught the first time the generator runs.
func Hex(s string) color.NRGBA {
	if len(s) != 7 && len(s) != 9 || s[0] != '#' {
		panic("art: bad colour " + s)
	}
	v := func(i int) uint8 {
		var b uint8
		for _, ch := range s[i : i+2] {
			b <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				b |= uint8(ch - '0')
			case ch >= 'a' && ch <= 'f':
				b |= uint8(ch-'a') + 10
			case ch >= 'A' && ch <= 'F':
				b |= uint8(ch-'A') + 10
			default:
				panic("art: bad colour " + s)
			}
		}
		return b
	}
	c := color.NRGBA{v(1), v(3), v(5), 255}
	if len(s) == 9 {
		c.A = v(7)
	}
	return c
}

// VGradient is a vertical linear gradient from Top (at y0) to Bottom (at y1),
// in unit coordinates, for use as a Fill source.
type VGradient struct {
	Top, Bottom color.NRGBA
	Y0, Y1      float64
	N           int // canvas size in pixels
}

func (g VGradient) ColorModel() color.Model { return color.NRGBAModel }
func (g VGradient) Bounds() image.Rectangle { return image.Rect(0, 0, g.N, g.N) }
func (g VGradient) At(x, y int) color.Color {
	t := ((float64(y)+0.5)/float64(g.N) - g.Y0) / (g.Y1 - g.Y0)
	t = math.Max(0, math.Min(1, t))
	mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a) + (float64(b)-float64(a))*t)) }
	return color.NRGBA{mix(g.Top.R, g.Bottom.R), mix(g.Top.G, g.Bottom.G), mix(g.Top.B, g.Bottom.B), mix(g.Top.A, g.Bottom.A)}
}
