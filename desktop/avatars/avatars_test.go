package avatars

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/server"
)

func TestHTTPBase(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.2:7070":              "http://10.0.0.2:7070",
		" ws://h:1/ws ":              "http://h:1",
		"wss://chat.example.org/ws":  "https://chat.example.org",
		"https://chat.example.org/":  "https://chat.example.org",
		"ws://h:1/prefix/ws?x=1#top": "http://h:1/prefix",
	} {
		got, err := HTTPBase(in)
		if err != nil || got != want {
			t.Errorf("HTTPBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", "ftp://h:1", "ws://"} {
		if _, err := HTTPBase(bad); err == nil {
			t.Errorf("HTTPBase(%q) accepted", bad)
		}
	}
}

func photo(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 0xff})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// bomb is a tiny PNG whose header claims width x height pixels.
func bomb(width, height uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestPrepareShrinksAndRefusesBombs(t *testing.T) {
	out, err := Prepare(photo(1200, 800))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(out))
	if err != nil || cfg.Width != 256 || cfg.Height != 256 || len(out) > 256<<10 {
		t.Fatalf("prepared %dx%d, %d bytes, %v", cfg.Width, cfg.Height, len(out), err)
	}
	if _, err := Prepare(bomb(60000, 60000)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("picture bomb: %v", err)
	}
	if _, err := Prepare([]byte("GIF89a not supported")); err == nil {
		t.Fatal("GIF accepted")
	}
	if _, err := Prepare(make([]byte, MaxPickedFile+1)); err == nil {
		t.Fatal("oversized file accepted")
	}
}

func TestUploadAndFetchFromARealRelay(t *testing.T) {
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	relay := srv.Addr().String()
	ctx := context.Background()

	pic, err := Prepare(photo(300, 300))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Upload(ctx, nil, relay, "wrong", pic); err == nil || !strings.Contains(err.Error(), "access token") {
		t.Fatalf("upload with a wrong token: %v", err)
	}
	ref, err := Upload(ctx, nil, relay, "s3cret", pic)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, "sha256:") {
		t.Fatalf("ref %q", ref)
	}

	// Another member's app fetches it once, keeps it on disk, and reports it.
	dir := t.TempDir()
	loaded := make(chan string, 1)
	c := NewCache(Options{Dir: dir, OnLoaded: func(r string) { loaded <- r }})
	defer c.Close()
	if err := c.SetRelay("ws://" + relay + "/ws"); err != nil {
		t.Fatal(err)
	}
	if c.Get(ref) != nil {
		t.Fatal("picture available before any fetch")
	}
	select {
	case got := <-loaded:
		if got != ref {
			t.Fatalf("loaded %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fetch never finished")
	}
	img := c.Get(ref)
	if img == nil || img.Bounds().Dx() != DrawSize {
		t.Fatalf("picture %v", img)
	}
	if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(ref, "sha256:")+".png")); err != nil {
		t.Fatalf("not kept on disk: %v", err)
	}

	// A new run finds it on disk, without the relay.
	srv.Shutdown(context.Background())
	c2 := NewCache(Options{Dir: dir})
	defer c2.Close()
	if c2.Get(ref) == nil {
		t.Fatal("picture not read back from disk")
	}
}

func TestBuiltinAndUnknownAvatars(t *testing.T) {
	c := NewCache(Options{})
	defer c.Close()
	if img := c.Get("builtin:fox"); img == nil || img.Bounds().Dx() != DrawSize {
		t.Fatal("built-in fox missing")
	}
	if c.Get("builtin:no-such-animal") == nil {
		t.Fatal("unknown built-in should fall back to the default picture")
	}
	if c.Get("") != nil || c.Get("javascript:alert(1)") != nil {
		t.Fatal("empty or bogus reference gave a picture")
	}
	// No relay set: an uploaded picture cannot be fetched, and nothing hangs.
	if c.Get("sha256:"+strings.Repeat("a", 64)) != nil {
		t.Fatal("picture from nowhere")
	}
}
