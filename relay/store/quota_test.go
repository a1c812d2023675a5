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

// A store at its size cap keeps working for the rooms that no longer grow:
// a room at its retention limit takes messages (each prunes an older one),
// across a restart too, members still come and go, and only what needs new
// space is refused.
func TestRoomsAtTheirLimitWriteAtTheCap(t *testing.T) {
	dir := t.TempDir()
	const limit = 4 << 20
	opts := Options{MaxSize: limit, History: 50, HistoryBytes: -1}
	s := openT(t, dir, opts)
	ensureT(t, s, "steady")
	msg := func(i int, size int) Record {
		return Record{TS: 1, MemberID: "m", ClientID: fmt.Sprint("c", i), Text: strings.Repeat("s", size)}
	}
	for i := range 200 {
		if _, err := appendWait(t, s, "steady", msg(i, 4000)); err != nil {
			t.Fatalf("steady room, message %d: %v", i, err)
		}
	}
	var full error
	for i := 0; i < 2000 && full == nil; i++ {
		room := fmt.Sprint("grow-", i)
		ensureT(t, s, room)
		for j := 0; j < 40 && full == nil; j++ {
			_, full = appendWait(t, s, room, msg(j, 4000))
		}
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("the growing rooms never filled the store: %v", full)
	}
	steady := func(s *Store, from int) {
		t.Helper()
		for i := from; i < from+200; i++ {
			if _, err := appendWait(t, s, "steady", msg(i, 100+(i%2)*3900)); err != nil {
				t.Fatalf("at the cap, the room at its limit refused message %d: %v", i, err)
			}
		}
	}
	steady(s, 1000)
	done := make(chan error, 1)
	s.PutMember("steady", MemberRecord{ID: "newcomer", Name: "Newcomer"}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("at the cap, a member could not be stored: %v", err)
	}
	if _, err := appendWait(t, s, "grow-0", msg(99, 4000)); !errors.Is(err, ErrFull) {
		t.Fatalf("a room still growing got %v, want ErrFull", err)
	}
	if err := s.WriteErr(); err != nil {
		t.Fatalf("refusing to grow a room is a quota, not a failed write: WriteErr %v", err)
	}
	s.Close()
	s = openT(t, dir, opts)
	steady(s, 2000)
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err != nil || fi.Size() > limit {
		t.Fatalf("file %v bytes, cap %d (%v)", fi.Size(), limit, err)
	}
}
