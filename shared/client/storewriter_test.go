package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// gateStore is an in-memory OutboxStore whose Puts wait until the test
// releases them, as a disk that has stalled would; it logs every call.
type gateStore struct {
	inner   MemoryOutbox
	gate    chan struct{}
	once    sync.Once
	entered chan string // the id of each Put as it starts waiting

	mu  sync.Mutex
	log []string
}

func newGateStore() *gateStore {
	return &gateStore{gate: make(chan struct{}), entered: make(chan string, 100)}
}

func (s *gateStore) release() { s.once.Do(func() { close(s.gate) }) }

func (s *gateStore) record(op string) {
	s.mu.Lock()
	s.log = append(s.log, op)
	s.mu.Unlock()
}

func (s *gateStore) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *gateStore) Load() ([]OutboxItem, error) { return s.inner.Load() }

func (s *gateStore) Put(it OutboxItem) error {
	s.entered <- it.ID
	<-s.gate
	s.record(fmt.Sprintf("put %s %s", it.ID, it.Status))
	return s.inner.Put(it)
}

func (s *gateStore) Delete(id string) error {
	s.record("delete " + id)
	return s.inner.Delete(id)
}

// Send, Retry and Discard run on the UI goroutine: they must not wait for
// the disk. Their writes reach the store afterwards, in the order they were
// made, and all of them before Run returns.
func TestSendDoesNotWaitForTheStore(t *testing.T) {
	store := newGateStore()
	store.inner.Put(OutboxItem{ID: "old", Text: "refused before", Status: Failed, Reason: "too fast"})
	store.inner.Put(OutboxItem{ID: "junk", Text: "given up", Status: Failed, Reason: "too long"})
	c, err := New(Config{URL: closedPort(t), Room: "lobby", Name: "ann", Key: testKey, Outbox: store,
		Backoff: Backoff{Base: time.Hour, Cap: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() {
		err := c.Run(ctx)
		for range c.Events() {
		}
		runDone <- err
	}()
	t.Cleanup(func() { cancel(); <-runDone })
	t.Cleanup(store.release) // runs first: a failing test must not leave Run stuck

	sent := make(chan error, 1)
	go func() {
		_, err := c.Send("first")
		sent <- err
	}()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send is still waiting for the store's Put after 10 s")
	}
	select {
	case <-store.entered: // the store goroutine is now stuck in Put
	case <-time.After(10 * time.Second):
		t.Fatal("the message never reached the store")
	}
	// More changes while the disk is stuck: none of them may wait either.
	if err := c.Retry("old"); err != nil {
		t.Fatal(err)
	}
	if err := c.Discard("junk"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send("second"); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, it := range c.Outbox() {
		texts = append(texts, it.Text+" "+it.Status.String())
	}
	if want := []string{"first pending", "refused before pending", "second pending"}; !slices.Equal(texts, want) {
		t.Fatalf("outbox in memory = %v, want %v", texts, want)
	}

	cancel()
	select {
	case <-runDone:
		t.Fatal("Run returned while the outbox was not yet written")
	case <-time.After(100 * time.Millisecond):
	}
	store.release()
	select {
	case <-runDone:
		runDone <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of the store catching up")
	}
	items, _ := store.inner.Load()
	texts = texts[:0]
	for _, it := range items {
		texts = append(texts, it.Text+" "+it.Status.String())
	}
	if want := []string{"first pending", "refused before pending", "second pending"}; !slices.Equal(texts, want) {
		t.Fatalf("store after Run = %v, want %v (calls: %v)", texts, want, store.calls())
	}
	calls := store.calls()
	if len(calls) != 5 || calls[0] != "put "+c.Outbox()[0].ID+" pending" || calls[3] != "delete junk" {
		t.Fatalf("store calls = %v, want put first, delete old + put old (the retry), delete junk, put second", calls)
	}
}

// With Config.Deliver the events come in batches on the engine's own
// goroutine, one hop to the UI: in order, never more than MaxEventBatch at
// once, and a slow Deliver holds up neither Send nor Run.
func TestDeliverGetsEveryEventInBatches(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	var mu sync.Mutex
	var batches [][]Event
	c, err := New(Config{URL: closedPort(t), Room: "lobby", Name: "ann", Key: testKey,
		Backoff: Backoff{Base: time.Hour, Cap: time.Hour},
		Deliver: func(b []Event) {
			<-release // the UI is busy
			mu.Lock()
			batches = append(batches, b)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()

	const n = 1200
	for i := range n {
		if _, err := c.Send(fmt.Sprintf("m%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case <-runDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Run waited for Deliver")
	}
	releaseOnce.Do(func() { close(release) })
	select {
	case _, ok := <-c.Events():
		if ok {
			t.Fatal("an event came on the Events channel although Deliver is set")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Events was not closed after the last batch")
	}
	mu.Lock()
	defer mu.Unlock()
	var texts []string
	largest := 0
	for _, b := range batches {
		largest = max(largest, len(b))
		for _, ev := range b {
			if oc, ok := ev.(OutboxChanged); ok {
				texts = append(texts, oc.Item.Text)
			}
		}
	}
	if largest > MaxEventBatch || largest < 2 {
		t.Fatalf("largest batch holds %d events, want 2..%d", largest, MaxEventBatch)
	}
	if len(texts) != n || !slices.IsSorted(texts) {
		t.Fatalf("%d OutboxChanged events (in order: %v), want %d in order", len(texts), slices.IsSorted(texts), n)
	}
	last := batches[len(batches)-1]
	if sc, ok := last[len(last)-1].(StateChanged); !ok || sc.State.Phase != Offline {
		t.Fatalf("last event = %#v, want the Offline state", last[len(last)-1])
	}
}

// fullDisk is an outbox store that cannot write anything.
type fullDisk struct{ MemoryOutbox }

func (*fullDisk) Put(OutboxItem) error { return errors.New("no space left on device") }

// Send cannot report a failed write any more (it returns first): the
// person hears of it through OutboxNotSaved, and the message stays queued.
func TestAFailedStoreWriteIsReported(t *testing.T) {
	c, err := New(Config{URL: closedPort(t), Room: "lobby", Name: "ann", Key: testKey, Outbox: &fullDisk{},
		Backoff: Backoff{Base: time.Hour, Cap: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	events := c.Events()
	runClient(t, c)
	id, err := c.Send("kept in memory")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	queued := false
	for {
		select {
		case ev := <-events:
			switch ev := ev.(type) {
			case OutboxChanged:
				queued = queued || ev.Item.ID == id
			case OutboxNotSaved:
				if ev.ID != id || ev.Err == nil {
					t.Fatalf("OutboxNotSaved = %+v, want message %s with an error", ev, id)
				}
				if !queued {
					t.Fatal("OutboxNotSaved came before the OutboxChanged that queued the message")
				}
				if out := c.Outbox(); len(out) != 1 || out[0].ID != id {
					t.Fatalf("outbox = %+v, want the message still queued", out)
				}
				return
			}
		case <-deadline:
			t.Fatal("no OutboxNotSaved within 10 s of a failed write")
		}
	}
}
