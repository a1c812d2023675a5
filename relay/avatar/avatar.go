// Package avatar validates uploaded pictures and turns them into the one form
// the relay stores and serves: a square 128x128 PNG, named by the SHA-256 of
// its bytes.
//
// Hostile uploads are refused before they cost memory. The body size is
// capped by the caller (MaxUpload). The header alone tells what a full decode
// will allocate (cost.go follows image/png and image/jpeg): the dimensions,
// PNG bit depth and interlacing, JPEG components, subsampling and
// progressive coefficients. A picture whose decode would cost more than
// MaxDecodeCost is refused without decoding a pixel, and a Limiter bounds how
// much memory all the decodes running at once may hold.
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
)

// Errors returned by Process; the server maps them to HTTP statuses.
var (
	ErrTooLarge    = errors.New("the picture is larger than 256 KiB: upload a smaller PNG or JPEG")
	ErrUnsupported = errors.New("the upload is not a PNG or JPEG picture")
	ErrDimensions  = errors.New("the picture has too many pixels for an avatar")
)

// Process checks an uploaded PNG or JPEG and returns the stored form: a
// Size x Size PNG cropped to the centre square. contentType is the upload's
// Content-Type ("image/png" or "image/jpeg"); it must match the bytes.
// It decodes without asking a Limiter: the relay calls Limiter.Process.
func Process(data []byte, contentType string) ([]byte, error) {
	h, err := check(data, contentType)
	if err != nil {
		return nil, err
	}
	return decode(data, h)
}

// Decode decodes a PNG or JPEG of at most MaxUpload bytes within the same
// bounds as an upload (MaxSide, MaxDecodeCost), for clients that draw
// pictures a relay serves.
func Decode(data []byte) (image.Image, error) {
	if len(data) > MaxUpload {
		return nil, ErrTooLarge
	}
	h, err := inspect(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if err := checkSize(h); err != nil {
		return nil, err
	}
	return decodeImage(data, h)
}

// check refuses, from the header alone, what must not be decoded.
func check(data []byte, contentType string) (header, error) {
	if len(data) > MaxUpload {
		return header{}, ErrTooLarge
	}
	var want string
	switch contentType {
	case "image/png":
		want = "png"
	case "image/jpeg", "image/jpg":
		want = "jpeg"
	default:
		return header{}, fmt.Errorf("%w (Content-Type %q; use image/png or image/jpeg)", ErrUnsupported, contentType)
	}
	h, err := inspect(data)
	if err != nil {
		return header{}, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if h.format != want {
		return header{}, fmt.Errorf("%w: Content-Type says %s but the bytes are %s", ErrUnsupported, want, h.format)
	}
	return h, checkSize(h)
}

// checkSize refuses a picture whose sides or decode cost are over the bounds.
func checkSize(h header) error {
	if h.width > MaxSide || h.height > MaxSide {
		return fmt.Errorf("%w: it claims %dx%d, at most %dx%d are accepted; scale it down to about 512x512 and upload it again",
			ErrDimensions, h.width, h.height, MaxSide, MaxSide)
	}
	if h.cost > MaxDecodeCost {
		return fmt.Errorf("%w: a %dx%d %s takes %d MiB to decode, at most %d MiB are allowed; scale it down to about 512x512 and upload it again",
			ErrDimensions, h.width, h.height, h.kind, (h.cost+1<<20-1)>>20, MaxDecodeCost>>20)
	}
	return nil
}

// decodeImage decodes a checked picture.
func decodeImage(data []byte, h header) (image.Image, error) {
	var img image.Image
	var err error
	if h.format == "png" {
		img, err = png.Decode(bytes.NewReader(data))
	} else {
		img, err = jpeg.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return img, nil
}

// decode turns a checked picture into the stored form.
func decode(data []byte, h header) ([]byte, error) {
	img, err := decodeImage(data, h)
	if err != nil {
		return nil, err
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

	// Convert only the source rows of one output row at a time into RGBA
	// (premultiplied), so the inner loop reads plain bytes instead of
	// calling At per pixel, and shrinking costs a strip of the picture
	// rather than a second copy of it.
	strip := image.NewRGBA(image.Rect(0, 0, side, max((side+size-1)/size, 1)))
	dst := image.NewNRGBA(image.Rect(0, 0, size, size))
	for oy := 0; oy < size; oy++ {
		sy0 := oy * side / size
		sy1 := max((oy+1)*side/size, sy0+1)
		draw.Draw(strip, image.Rect(0, 0, side, sy1-sy0), src, image.Pt(x0, y0+sy0), draw.Src)
		for ox := 0; ox < size; ox++ {
			sx0 := ox * side / size
			sx1 := max((ox+1)*side/size, sx0+1)
			var r, g, bl, a, n uint64
			for sy := 0; sy < sy1-sy0; sy++ {
				row := strip.Pix[sy*strip.Stride:]
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
