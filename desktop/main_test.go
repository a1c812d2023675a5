package main

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/heartline/heartline"
)

// The app's metadata comes from FyneApp.toml (through the root package), so a
// plain `go build` binary has the right name, ID, version and threading mode.
func TestMetadataFollowsFyneAppToml(t *testing.T) {
	meta := heartline.App()
	md, err := appMetadata(meta, "")
	if err != nil {
		t.Fatal(err)
	}
	if md.ID != meta.ID || md.Name != meta.Name || md.Version != meta.Version || md.Build != meta.Build {
		t.Fatalf("metadata %+v does not match FyneApp.toml %+v", md, meta)
	}
	if md.ID == "" || md.Name != "Heartline" {
		t.Fatalf("metadata %+v", md)
	}
	if !md.Migrations["fyneDo"] {
		t.Fatal("FyneApp.toml opts into fyneDo, the app must too")
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(md.Icon.Content()))
	if err != nil || cfg.Width < 256 {
		t.Fatalf("icon: %v %dx%d", err, cfg.Width, cfg.Height)
	}
}

func TestProfileKeepsSeparatePreferences(t *testing.T) {
	meta := heartline.App()
	md, err := appMetadata(meta, "bob")
	if err != nil || md.ID != meta.ID+".bob" {
		t.Fatalf("%q %v", md.ID, err)
	}
	if _, err := appMetadata(meta, "../etc"); err == nil {
		t.Fatal("profile with a path accepted")
	}
}

func TestVersionFlag(t *testing.T) {
	if code := run([]string{"--version"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if code := run([]string{"--no-such-flag"}); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}
