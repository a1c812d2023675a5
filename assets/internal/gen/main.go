// Command gen paints Heartline's built-in avatars and app icon into PNG files.
// Run it through `go generate ./assets` after changing the artwork in
// assets/internal/art; the assets tests fail while the files are stale.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/heartline/heartline/assets/internal/art"
)

func main() {
	out := flag.String("out", ".", "directory to write avatars/ and icons/ into (the assets package directory)")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func generate(out string) error {
	want := map[string]bool{}
	for _, f := range art.Files() {
		data, err := art.Encode(f.Render())
		if err != nil {
			return fmt.Errorf("encode %s: %w", f.Path, err)
		}
		p := filepath.Join(out, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		want[filepath.ToSlash(f.Path)] = true
	}
	// A renamed or removed avatar must not linger and stay embedded.
	for _, dir := range []string{"avatars", "icons"} {
		old, err := filepath.Glob(filepath.Join(out, dir, "*.png"))
		if err != nil {
			return err
		}
		for _, p := range old {
			rel := dir + "/" + filepath.Base(p)
			if !want[rel] && strings.HasSuffix(p, ".png") {
				if err := os.Remove(p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
