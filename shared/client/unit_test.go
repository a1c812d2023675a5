package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heartline/heartline/relay/server"
)

func TestBackoffCeilingDoublesUpToCap(t *testing.T) {
	var b Backoff // defaults: 500 ms base, 30 s cap
	want := []time.Duration{
		500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second,
	}
	for i, w := range want {
		if got := b.Ceiling(i + 1); got != w {
			t.Errorf("Ceiling(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := b.Ceiling(10_000); got != 30*time.Second {
		t.Errorf("Ceiling(10000) = %v, want the cap (no overflow)", got)
	}
}

func TestBackoffDelayIsFullJitter(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: 8 * time.Second}
	cases := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0, 0},
		{1, 0.5, 500 * time.Millisecond},
		{3, 0.25, time.Second},
		{4, 0.999, 7992 * time.Millisecond},
		{9, 0.5, 4 * time.Second}, // capped at 8 s
		{2, 1.5, 0},               // out-of-range random numbers do not stretch the wait
	}
	for _, c := range cases {
		if got := b.Delay(c.attempt, c.r); got != c.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", c.attempt, c.r, got, c.want)
		}
	}
}

func TestQueuePumpKeepsOrderAndNeverBlocksProducer(t *testing.T) {
	q := newQueue[int]()
	out := make(chan int) // unbuffered: the reader is "slow" (not reading yet)
	done := make(chan struct{})
	go func() { pumpEvents(q, out); close(done) }()

	const n = 10000
	for i := range n {
		if !q.push(i) { // must return at once although nobody reads
			t.Fatal("push refused before close")
		}
	}
	q.close()
	if q.push(-1) {
		t.Fatal("push accepted after close")
	}
	var got []int
	for v := range out {
		got = append(got, v)
	}
	<-done
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d is %d: order lost", i, v)
		}
	}
}

func TestSeqTrackerIsGapFree(t *testing.T) {
	var tr seqTracker
	steps := []struct {
		seq      uint64
		new      bool
		wantLast uint64
	}{
		{1, true, 1},
		{2, true, 2},
		{4, true, 2}, // an ack that overtook seq 3: held, but last_seq waits
		{4, false, 2},
		{6, true, 2},
		{3, true, 4}, // the gap closes: 3 and 4 count now
		{2, false, 4},
		{5, true, 6},
		{0, false, 6},
	}
	for i, s := range steps {
		if got := tr.add(s.seq); got != s.new {
			t.Errorf("step %d: add(%d) new = %v, want %v", i, s.seq, got, s.new)
		}
		if tr.last != s.wantLast {
			t.Errorf("step %d: last = %d, want %d", i, tr.last, s.wantLast)
		}
	}
	if !tr.has(6) || tr.has(7) {
		t.Errorf("has(6)=%v has(7)=%v", tr.has(6), tr.has(7))
	}

	tr.add(9)
	tr.add(12)
	tr.acceptGapUpTo(10) // only the latest page came: 7..10 will never arrive
	if tr.last != 10 || !tr.has(12) || tr.has(11) {
		t.Fatalf("after acceptGapUpTo(10): last=%d has(12)=%v has(11)=%v", tr.last, tr.has(12), tr.has(11))
	}
	tr.add(11)
	if tr.last != 12 {
		t.Fatalf("last = %d after filling 11, want 12", tr.last)
	}
}

func TestFileOutboxSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "outbox.json")
	ob, err := NewFileOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if items, _ := ob.Load(); len(items) != 0 {
		t.Fatalf("new outbox holds %d items", len(items))
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, id := range []string{"a", "b", "c"} {
		if err := ob.Put(OutboxItem{ID: id, Text: "text " + id, Created: created}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Put(OutboxItem{ID: "b", Text: "text b", Status: Failed, Reason: "too long", Created: created}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := ob.Delete("missing"); err != nil {
		t.Fatalf("deleting a missing id: %v", err)
	}
	if err := ob.Put(OutboxItem{ID: "d", Text: "text d", Created: created}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Put(OutboxItem{ID: "e", Text: "text e", Created: created}); err != nil {
		t.Fatal(err)
	}
	if err := ob.DeleteMany([]string{"d", "missing", "e"}); err != nil {
		t.Fatal(err)
	}

	again, err := NewFileOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	items, _ := again.Load()
	want := []OutboxItem{
		{ID: "b", Text: "text b", Status: Failed, Reason: "too long", Created: created},
		{ID: "c", Text: "text c", Created: created},
	}
	if !slices.Equal(items, want) {
		t.Fatalf("reopened outbox = %+v, want %+v", items, want)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("folder holds %v, want only the outbox file", names)
	}
}

func TestFileOutboxReportsDamagedFile(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"truncated.json":   `{"version":1,"items":[{"id":"a","te`,
		"future.json":      `{"version":7,"items":[]}`,
		"duplicate.json":   `{"version":1,"items":[{"id":"a"},{"id":"a"}]}`,
		"not-an-obj.json":  `[1,2,3]`,
		"binary-junk.json": "\x00\x01\x02",
	}
	for name, content := range cases {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ob, err := NewFileOutbox(path)
		if err == nil {
			t.Errorf("%s: opened a damaged file (%v)", name, ob)
			continue
		}
		if !errors.Is(err, ErrOutboxDamaged) {
			t.Errorf("%s: error %v does not wrap ErrOutboxDamaged", name, err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("%s: the damaged file was changed", name)
		}
	}
}

func TestFileOutboxKeepsStateWhenWriteFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profile")
	path := filepath.Join(dir, "outbox.json")
	ob, err := NewFileOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Put(OutboxItem{ID: "a", Text: "kept"}); err != nil {
		t.Fatal(err)
	}
	// The folder disappears under the app (a removed USB stick, say) and a
	// plain file takes its name: no write can succeed, even as root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ob.Put(OutboxItem{ID: "b", Text: "not stored"}); err == nil {
		t.Fatal("Put reported success although nothing could be written")
	}
	items, _ := ob.Load()
	if len(items) != 1 || items[0].ID != "a" {
		t.Fatalf("after a failed Put the outbox holds %+v, want only the stored item", items)
	}
}

func TestFileOutboxConcurrentUse(t *testing.T) {
	ob, err := NewFileOutbox(filepath.Join(t.TempDir(), "outbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				id := string(rune('a'+g)) + string(rune('0'+i))
				if err := ob.Put(OutboxItem{ID: id}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	items, _ := ob.Load()
	if len(items) != 40 {
		t.Fatalf("%d items after 40 concurrent puts", len(items))
	}
}

// exclusiveStore is an OutboxStore that records calls overlapping in time,
// which OutboxStore's contract ("one call at a time") rules out. Each call
// takes a moment, as a write to disk does.
type exclusiveStore struct {
	inner            MemoryOutbox
	active, overlaps atomic.Int32
}

func (s *exclusiveStore) enter() func() {
	if s.active.Add(1) > 1 {
		s.overlaps.Add(1)
	}
	time.Sleep(200 * time.Microsecond)
	return func() { s.active.Add(-1) }
}

func (s *exclusiveStore) Load() ([]OutboxItem, error) { defer s.enter()(); return s.inner.Load() }
func (s *exclusiveStore) Put(it OutboxItem) error     { defer s.enter()(); return s.inner.Put(it) }
func (s *exclusiveStore) Delete(id string) error      { defer s.enter()(); return s.inner.Delete(id) }

// Acked messages leave the store in the background while the person goes
// on typing: the engine must still call the store one call at a time.
func TestOutboxStoreCallsNeverOverlap(t *testing.T) {
	relay := startRelay(t, server.Config{Rate: 1000, Burst: 1000})
	store := &exclusiveStore{}
	ann := newMember(t, Config{URL: relay.addr, Name: "ann", Outbox: store})
	ann.run()
	ann.waitConnected()
	const n = 200
	for i := range n {
		if _, err := ann.c.Send(fmt.Sprintf("m%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ann.waitUntil("every message acked", 10*time.Second, func() bool { return len(ann.c.Outbox()) == 0 })
	if err := ann.stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if left, _ := store.inner.Load(); len(left) != 0 {
		t.Errorf("the store still holds %d acked messages", len(left))
	}
	if n := store.overlaps.Load(); n > 0 {
		t.Fatalf("%d store calls overlapped another one", n)
	}
}

// powerCutOutbox is a file outbox whose process dies right after a Delete:
// the next Put never reaches the disk.
type powerCutOutbox struct {
	*FileOutbox
	deleted bool
}

func (p *powerCutOutbox) Delete(id string) error {
	p.deleted = true
	return p.FileOutbox.Delete(id)
}

func (p *powerCutOutbox) Put(item OutboxItem) error {
	if p.deleted {
		return errors.New("power cut")
	}
	return p.FileOutbox.Put(item)
}

// Retry moves a failed message to the end of the queue, on disk too. A
// crash in the middle of that must not lose the message.
func TestRetryNeverLeavesTheFileWithoutTheMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.json")
	ob, err := NewFileOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range []OutboxItem{
		{ID: "a", Text: "first"},
		{ID: "b", Text: "refused once", Status: Failed, Reason: "too fast"},
		{ID: "c", Text: "third"},
	} {
		if err := ob.Put(it); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Config{URL: "127.0.0.1:1", Room: "lobby", Name: "ann", Key: testKey, Outbox: &powerCutOutbox{FileOutbox: ob}})
	if err != nil {
		t.Fatal(err)
	}
	retryErr := c.Retry("b")
	c.store.wait() // the write follows Retry on the store goroutine

	after, err := NewFileOutbox(path) // the app starting again
	if err != nil {
		t.Fatal(err)
	}
	items, _ := after.Load()
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if !slices.Contains(ids, "b") {
		t.Fatalf("after Retry (%v) the file holds %v: the retried message is lost", retryErr, ids)
	}
	if retryErr == nil && (!slices.Equal(ids, []string{"a", "c", "b"}) || items[2].Status != Pending) {
		t.Fatalf("Retry succeeded but the file holds %+v, want b pending and last", items)
	}
}
