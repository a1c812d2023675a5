package avatar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"testing"
)

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stripes is w x h with red on the left, green in the centre square and blue
// on the right, so a correct centre crop is all green.
func stripes(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	left := (w - h) / 2
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{0, 200, 0, 255}
			if x < left {
				c = color.RGBA{255, 0, 0, 255}
			} else if x >= left+h {
				c = color.RGBA{0, 0, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func TestProcessCropsAndScalesJPEG(t *testing.T) {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, stripes(600, 400), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	out, err := Process(b.Bytes(), "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("stored form is not a PNG: %v", err)
	}
	if img.Bounds().Dx() != Size || img.Bounds().Dy() != Size {
		t.Fatalf("size %v, want %dx%d", img.Bounds(), Size, Size)
	}
	for _, p := range []image.Point{{0, 0}, {2, 64}, {64, 64}, {125, 127}} {
		r, g, bl, _ := img.At(p.X, p.Y).RGBA()
		if r>>8 > 40 || bl>>8 > 40 || g>>8 < 150 {
			t.Errorf("pixel %v = %d,%d,%d: the crop is not the centre square", p, r>>8, g>>8, bl>>8)
		}
	}
}

func TestProcessKeepsTransparencyAndUpscalesSmallPNG(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			if x < 8 {
				img.SetNRGBA(x, y, color.NRGBA{255, 255, 0, 255})
			}
		}
	}
	out, err := Process(encodePNG(t, img), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := png.Decode(bytes.NewReader(out))
	if _, _, _, a := dec.At(120, 5).RGBA(); a != 0 {
		t.Errorf("transparent half became alpha %d", a>>8)
	}
	if r, g, _, a := dec.At(5, 5).RGBA(); a>>8 != 255 || r>>8 != 255 || g>>8 != 255 {
		t.Errorf("opaque yellow half became %d,%d a=%d", r>>8, g>>8, a>>8)
	}
	// Same input, same stored bytes: content addressing dedups uploads.
	again, _ := Process(encodePNG(t, img), "image/png")
	if Hash(again) != Hash(out) {
		t.Error("processing is not deterministic")
	}
}

// pngBomb is a syntactically valid PNG header that claims w x h pixels and
// carries no pixel data at all.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestProcessRefusesHostileUploads(t *testing.T) {
	small := encodePNG(t, stripes(30, 20))
	cases := []struct {
		name string
		data []byte
		ct   string
		want error
	}{
		{"bomb 60000x60000", pngBomb(60000, 60000), "image/png", ErrDimensions},
		{"bomb 4097 wide", pngBomb(4097, 10), "image/png", ErrDimensions},
		{"4096 square, 8-bit RGBA", pngBomb(4096, 4096), "image/png", ErrDimensions},
		{"too big", make([]byte, MaxUpload+1), "image/png", ErrTooLarge},
		{"not an image", []byte("GIF89a....."), "image/png", ErrUnsupported},
		{"gif content type", small, "image/gif", ErrUnsupported},
		{"png labelled jpeg", small, "image/jpeg", ErrUnsupported},
		{"truncated png", small[:len(small)/2], "image/png", ErrUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Process(c.data, c.ct)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestDirSaveIsContentAddressed(t *testing.T) {
	d, err := OpenDir(t.TempDir() + "/avatars")
	if err != nil {
		t.Fatal(err)
	}
	data := encodePNG(t, stripes(10, 10))
	h, err := d.Save(data)
	if err != nil {
		t.Fatal(err)
	}
	if h != Hash(data) || !ValidHex(h) || !d.Has(h) {
		t.Fatalf("hash %q not stored under its content hash", h)
	}
	got, err := os.ReadFile(d.Path(h))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored bytes differ: %v", err)
	}
	if h2, err := d.Save(data); err != nil || h2 != h {
		t.Fatalf("second save: %q %v", h2, err)
	}
	if d.Has("../../etc/passwd") || d.Has(Hash([]byte("nothing"))) {
		t.Error("Has accepts a name that is not stored")
	}
}
