package avatar

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"runtime"
	"testing"
	"time"
)

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// noisy fills an image with a pattern that does not compress to nothing.
func noisy(img interface{ Set(x, y int, c color.Color) }, w, h int) {
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA64{uint16(x * 977), uint16(y * 613), uint16((x ^ y) * 131), uint16(0xffff - x*7)})
		}
	}
}

// The estimate is what the limiter reserves, so it must cover what the
// standard library's decoder really allocates, for every form it decodes.
func TestDecodeCostCoversTheDecoder(t *testing.T) {
	const w, h = 333, 211
	pngOf := func(img image.Image) []byte {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	rect := image.Rect(0, 0, w, h)
	forms := map[string]image.Image{
		"gray":     image.NewGray(rect),
		"gray16":   image.NewGray16(rect),
		"rgb":      image.NewRGBA(rect), // opaque: written as truecolour
		"nrgba":    image.NewNRGBA(rect),
		"nrgba64":  image.NewNRGBA64(rect),
		"paletted": image.NewPaletted(rect, color.Palette{color.Black, color.White, color.RGBA{200, 0, 0, 255}}),
	}
	cases := map[string][]byte{}
	for name, img := range forms {
		if img, ok := img.(interface{ Set(x, y int, c color.Color) }); ok {
			noisy(img, w, h)
		}
		cases["png "+name] = pngOf(img)
	}
	src := image.NewRGBA(rect)
	noisy(src, w, h)
	gray := image.NewGray(rect)
	noisy(gray, w, h)
	for name, img := range map[string]image.Image{"jpeg 4:2:0": src, "jpeg gray": gray} {
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		cases[name] = b.Bytes()
	}
	for _, f := range []string{
		"photo-progressive-1920x1080.jpg",
		"progressive-420-163x99.jpg",
		"cmyk-progressive-163x99.jpg",
		"interlaced-rgb-161x97.png",
		"interlaced-rgba64-161x97.png",
	} {
		cases[f] = readFixture(t, f)
	}

	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			hd, err := inspect(data)
			if err != nil {
				t.Fatal(err)
			}
			var decErr error
			used := allocated(func() {
				if hd.format == "png" {
					_, decErr = png.Decode(bytes.NewReader(data))
				} else {
					_, decErr = jpeg.Decode(bytes.NewReader(data))
				}
			})
			if decErr != nil {
				t.Fatal(decErr)
			}
			if hd.cost < used {
				t.Errorf("%s: estimated %d bytes, the decoder allocated %d", hd.kind, hd.cost, used)
			}
			t.Logf("%s: estimate %d KiB, allocated %d KiB", hd.kind, hd.cost>>10, used>>10)
		})
	}
}

// The pictures from the hostile-upload report cost 190-320 MiB each to
// decode; they must be refused from their header, before a pixel is decoded.
func TestPictureBombsAreRefusedBeforeDecoding(t *testing.T) {
	for _, c := range []struct{ file, ct string }{
		{"bomb-progressive-4096x3900.jpg", "image/jpeg"},
		{"bomb-rgba64-4096x4096.png", "image/png"},
		{"bomb-rgba64-interlaced-4096x4096.png", "image/png"},
	} {
		t.Run(c.file, func(t *testing.T) {
			data := readFixture(t, c.file)
			var err error
			used := allocated(func() { _, err = Process(data, c.ct) })
			if !errors.Is(err, ErrDimensions) {
				t.Fatalf("err = %v, want ErrDimensions", err)
			}
			if used > 1<<20 {
				t.Errorf("refusing it allocated %d KiB; it should be refused from its header", used>>10)
			}
			t.Logf("%v", err)
		})
	}
}

// What a person would upload still works: a 2 MP photo in its costliest
// common form (progressive, no chroma subsampling), and a 1600x1200 one.
func TestTwoMegapixelPhotosAreAccepted(t *testing.T) {
	if _, err := Process(readFixture(t, "photo-progressive-1920x1080.jpg"), "image/jpeg"); err != nil {
		t.Errorf("progressive 1920x1080: %v", err)
	}
	src := image.NewRGBA(image.Rect(0, 0, 1600, 1200))
	noisy(src, 1600, 1200)
	var b bytes.Buffer
	jpeg.Encode(&b, src, &jpeg.Options{Quality: 40})
	if b.Len() > MaxUpload {
		t.Fatalf("test picture is %d bytes, over the upload limit", b.Len())
	}
	out, err := Process(b.Bytes(), "image/jpeg")
	if err != nil {
		t.Fatalf("baseline 1600x1200: %v", err)
	}
	if img, err := png.Decode(bytes.NewReader(out)); err != nil || img.Bounds().Dx() != Size {
		t.Fatalf("stored form: %v %v", img.Bounds(), err)
	}
}

func TestLimiterBoundsUploadsAndDecodeMemory(t *testing.T) {
	l := NewLimiter(MaxDecodeCost, 2)
	end1, ok1 := l.Begin()
	end2, ok2 := l.Begin()
	if !ok1 || !ok2 {
		t.Fatal("the first two uploads were not admitted")
	}
	if _, ok := l.Begin(); ok {
		t.Fatal("a third upload was admitted beyond the bound of 2")
	}
	end1()
	end3, ok := l.Begin()
	if !ok {
		t.Fatal("an upload was refused after one finished")
	}
	end2()
	end3()

	photo := readFixture(t, "photo-progressive-1920x1080.jpg")
	// Another decode holds the whole budget: this one waits, and is told
	// to come back when its wait ends.
	if err := l.decode.Acquire(context.Background(), MaxDecodeCost); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.Process(ctx, photo, "image/jpeg")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("decoded while the budget was taken (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	// Once the budget is free the same picture decodes.
	l.decode.Release(MaxDecodeCost)
	if _, err := l.Process(context.Background(), photo, "image/jpeg"); err != nil {
		t.Fatal(err)
	}
}
