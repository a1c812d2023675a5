// Package avatar validates uploaded pictures and turns them into the one form
// the relay stores and serves: a square 128x128 PNG, named by the SHA-256 of
// its bytes.
//
// Hostile uploads are refused before they cost memory: the body size is capped
// by the caller (MaxUpload), and the header's claimed dimensions are checked
// with image.DecodeConfig before any pixel is decoded, so a small file that
// claims 60000x60000 pixels (a picture bomb) never allocates its bitmap.
package avatar

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
)

const (
	// MaxUpload is the largest upload accepted, in bytes.
	MaxUpload = 256 << 10
	// Size is the side of the stored square picture, in pixels.
	Size = 128
	// MaxSide is the largest width or height accepted in an upload's header.
	MaxSide = 4096
	// MaxPixels is the largest width*height accepted in an upload's header.
	MaxPixels = 16 << 20
)

// Errors returned by Process; the server maps them to HTTP statuses.
var (
	ErrTooLarge    = errors.New("the picture is larger than 256 KiB: upload a smaller PNG or JPEG")
	ErrUnsupported = errors.New("the upload is not a PNG or JPEG picture")
	ErrDimensions  = errors.New("the picture's dimensions are too large (at most 4096x4096 pixels and 16 megapixels)")
)

// Process checks an uploaded PNG or JPEG and returns the stored form: a
// Size x Size PNG cropped to the centre square. contentType is the upload's
// Content-Type ("image/png" or "image/jpeg"); it must match the bytes.
func Process(data []byte, contentType string) ([]byte, error) {
	if len(data) > MaxUpload {
		return nil, ErrTooLarge
	}
	var want string
	switch contentType {
	case "image/png":
		want = "png"
	case "image/jpeg", "image/jpg":
		want = "jpeg"
	default:
		return nil, fmt.Errorf("%w (Content-Type %q; use image/png or image/jpeg)", ErrUnsupported, contentType)
	}
	cfg, format, err := decodeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if format != want {
		return nil, fmt.Errorf("%w: Content-Type says %s but the bytes are %s", ErrUnsupported, want, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxSide || cfg.Height > MaxSide ||
		int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("%w: it claims %dx%d", ErrDimensions, cfg.Width, cfg.Height)
	}
	var img image.Image
	if format == "png" {
		img, err = png.Decode(bytes.NewReader(data))
	} else {
		img, err = jpeg.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	out := Square(img, Size)
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, out); err != nil {
		return nil, fmt.Errorf("encode avatar: %w", err)
	}
	return buf.Bytes(), nil
}

// Hash returns the lowercase hex SHA-256 of b: the stored picture's name.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// decodeConfig reads only the header, using the two decoders the relay accepts
// (no image.RegisterFormat side effects on the rest of the program).
func decodeConfig(data []byte) (image.Config, string, error) {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		c, err := png.DecodeConfig(bytes.NewReader(data))
		return c, "png", err
	case bytes.HasPrefix(data, []byte("\xff\xd8")):
		c, err := jpeg.DecodeConfig(bytes.NewReader(data))
		return c, "jpeg", err
	}
	return image.Config{}, "", errors.New("unknown file signature")
}

// Square crops src to its centred square and scales it to size x size with a
// box filter (each output pixel averages the source pixels it covers), which
// is enough for shrinking photos without aliasing; enlarging repeats pixels.
// Colours are averaged in premultiplied alpha, so transparent pixels do not
// darken the edges.
func Square(src image.Image, size int) *image.NRGBA {
	b := src.Bounds()
	side := min(b.Dx(), b.Dy())
	x0 := b.Min.X + (b.Dx()-side)/2
	y0 := b.Min.Y + (b.Dy()-side)/2

	// Convert the crop once into RGBA (premultiplied) so the inner loop
	// reads plain bytes instead of calling At per pixel.
	crop := image.NewRGBA(image.Rect(0, 0, side, side))
	draw.Draw(crop, crop.Bounds(), src, image.Pt(x0, y0), draw.Src)

	dst := image.NewNRGBA(image.Rect(0, 0, size, size))
	for oy := 0; oy < size; oy++ {
		sy0 := oy * side / size
		sy1 := max((oy+1)*side/size, sy0+1)
		for ox := 0; ox < size; ox++ {
			sx0 := ox * side / size
			sx1 := max((ox+1)*side/size, sx0+1)
			var r, g, bl, a, n uint64
			for sy := sy0; sy < sy1; sy++ {
				row := crop.Pix[sy*crop.Stride:]
				for sx := sx0; sx < sx1; sx++ {
					p := row[sx*4 : sx*4+4]
					r += uint64(p[0])
					g += uint64(p[1])
					bl += uint64(p[2])
					a += uint64(p[3])
					n++
				}
			}
			// Average in premultiplied space, then un-premultiply for NRGBA.
			c := color.RGBA{uint8(r / n), uint8(g / n), uint8(bl / n), uint8(a / n)}
			dst.SetNRGBA(ox, oy, color.NRGBAModel.Convert(c).(color.NRGBA))
		}
	}
	return dst
}
