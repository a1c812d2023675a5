package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fillForCorruption writes a store with enough messages to span many pages
// (one commit per message) and returns the bytes of its file.
func fillForCorruption(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	ensureT(t, s, "r")
	for i := range 300 {
		mustAppend(t, s, "r", Record{TS: int64(i), MemberID: "m", ClientID: fmt.Sprint(i),
			Text: fmt.Sprintf("MARKER-%04d %s", i, strings.Repeat("x", 100))})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// damagePageOf rewrites every page that holds marker with fn (copy on write
// leaves stale copies in free pages; the live one is among them).
func damagePageOf(t *testing.T, path, marker string, pageSize int, fn func(page []byte)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for off := 0; off+pageSize <= len(data); off += pageSize {
		if page := data[off : off+pageSize]; bytes.Contains(page, []byte(marker)) {
			fn(page)
			found++
		}
	}
	if found == 0 {
		t.Fatalf("%s not found in the file", marker)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesDamagedPages(t *testing.T) {
	cases := map[string]func(page []byte){
		// Page header: id (8 bytes), flags (2), count (2), overflow (4).
		"page header with a wrong id": func(p []byte) { binary.LittleEndian.PutUint64(p, 1<<40) },
		"page header with bad flags":  func(p []byte) { binary.LittleEndian.PutUint16(p[8:], 0x77) },
		"one byte of a message changed": func(p []byte) {
			i := bytes.Index(p, []byte("MARKER-0150"))
			p[i+len("MARKER-015")] = '1'
		},
		"value lengths pointing past the page": func(p []byte) {
			// Leaf elements start after the 16-byte header; each holds
			// flags, pos, ksize, vsize. Point every value past the page.
			for e := 16; e < 16+16*4; e += 16 {
				binary.LittleEndian.PutUint32(p[e+12:], 1<<20)
			}
		},
	}
	// Filled once: 300 fsyncs per case made this the package's slowest test.
	healthy := fillForCorruption(t)
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, healthy, 0o600); err != nil {
				t.Fatal(err)
			}
			damagePageOf(t, path, "MARKER-0150", os.Getpagesize(), damage)
			s, err := Open(dir, Options{Logger: testLogger(t)})
			if err == nil {
				s.Close()
				t.Fatal("Open accepted a damaged file")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "move it aside") {
				t.Fatalf("err = %v, want ErrCorrupt telling to move the file away", err)
			}
			t.Log(err)
		})
	}
}

// An empty file is a lost history, not a new one: Open refuses it (a fresh
// history would give every room a new epoch) and leaves it as it was.
func TestOpenRefusesEmptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{Logger: testLogger(t)})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted an empty file")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "backup") || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("err = %v, want ErrCorrupt naming a backup and moving the file aside", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("the file changed: %v %v", fi, err)
	}
}
