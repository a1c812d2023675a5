package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// retainedBytes is what HistoryBytes counts for a room, read back through
// the public API: the encoded records and their keys.
func retainedBytes(t *testing.T, s *Store, room string) (n int64, recs []Record) {
	t.Helper()
	recs, err := s.Latest(room, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		n += int64(8 + len(encodeRecord(nil, &recs[i])))
	}
	return n, recs
}

// A room's history is bounded in bytes as well as in messages: the oldest
// records (and their dedup entries) go once the room's records take more
// than HistoryBytes, the newest always stays, and a store reopened with a
// smaller bound prunes at once.
func TestHistoryBytesRetention(t *testing.T) {
	dir := t.TempDir()
	const limit = 20_000
	s := openT(t, dir, Options{History: 1000, HistoryBytes: limit})
	ensureT(t, s, "r")
	text := strings.Repeat("z", 1000)
	for i := range 60 {
		mustAppend(t, s, "r", Record{TS: int64(i), MemberID: "m", ClientID: fmt.Sprint(i), Text: text})
	}
	n, recs := retainedBytes(t, s, "r")
	if n > limit || n < limit-1100 || recs[len(recs)-1].Seq != 60 {
		t.Fatalf("retained %d bytes in %d records (last seq %d), want at most %d and within one record of it, newest kept",
			n, len(recs), recs[len(recs)-1].Seq, limit)
	}
	if _, ok, _ := s.LookupID("r", "m", "0"); ok {
		t.Error("the dedup entry of a pruned message is still there")
	}
	// A record larger than the bound alone is kept: it is the newest.
	mustAppend(t, s, "r", Record{TS: 99, MemberID: "m", ClientID: "big", Text: strings.Repeat("B", 3*limit)})
	if _, recs := retainedBytes(t, s, "r"); len(recs) != 1 || recs[0].ClientID != "big" {
		t.Fatalf("after a record over the bound: %d records", len(recs))
	}
	mustAppend(t, s, "r", Record{TS: 100, MemberID: "m", ClientID: "after", Text: text})
	if _, recs := retainedBytes(t, s, "r"); len(recs) != 1 || recs[0].ClientID != "after" {
		t.Fatalf("after one more record: %d records", len(recs))
	}
	for i := range 30 {
		mustAppend(t, s, "r", Record{TS: int64(200 + i), MemberID: "m", ClientID: fmt.Sprint("x", i), Text: text})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{History: 1000, HistoryBytes: limit / 2})
	if n, recs := retainedBytes(t, s, "r"); n > limit/2 || recs[len(recs)-1].ClientID != "x29" {
		t.Fatalf("reopened with half the bound: %d bytes", n)
	}
}

// With MaxSize, a commit that would grow the file beyond it fails with
// ErrFull; the file stays within the cap and what was stored stays readable.
func TestMaxSizeRefusesWithErrFull(t *testing.T) {
	dir := t.TempDir()
	const limit = 256 << 10
	s := openT(t, dir, Options{MaxSize: limit, HistoryBytes: -1})
	var full error
	stored := 0
	for i := 0; i < 1000 && full == nil; i++ {
		room := fmt.Sprint("room-", i)
		ensureT(t, s, room)
		if _, err := appendWait(t, s, room, Record{TS: 1, MemberID: "m", ClientID: "1", Text: strings.Repeat("q", 4000)}); err != nil {
			full = err
			break
		}
		stored++
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("after %d rooms: err = %v, want ErrFull", stored, full)
	}
	t.Log(full)
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err != nil || fi.Size() > limit {
		t.Fatalf("file %v bytes, cap %d (%v)", fi.Size(), limit, err)
	}
	if recs, err := s.Latest("room-0", 10); err != nil || len(recs) != 1 {
		t.Fatalf("stored history: %d records, %v", len(recs), err)
	}
}
