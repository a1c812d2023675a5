package client

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkFileOutboxSendAck measures what one typed message costs the
// file outbox: a Put when it is typed and a Delete when the relay acks it,
// each an atomic rewrite with fsync, with `backlog` other messages waiting.
func BenchmarkFileOutboxSendAck(b *testing.B) {
	for _, backlog := range []int{0, 100} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			ob, err := NewFileOutbox(filepath.Join(b.TempDir(), "outbox.json"))
			if err != nil {
				b.Fatal(err)
			}
			for i := range backlog {
				ob.Put(OutboxItem{ID: fmt.Sprintf("old-%d", i), Text: "a message of a typical length, about sixty characters"})
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("new-%d", i)
				if err := ob.Put(OutboxItem{ID: id, Text: "a message of a typical length, about sixty characters"}); err != nil {
					b.Fatal(err)
				}
				if err := ob.Delete(id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEventQueue measures pushing an event through the unbounded queue
// to a reader.
func BenchmarkEventQueue(b *testing.B) {
	q := newQueue[Event]()
	out := make(chan Event)
	go pumpEvents(q, out)
	done := make(chan struct{})
	go func() {
		for range out {
		}
		close(done)
	}()
	ev := StateChanged{}
	for b.Loop() {
		q.push(ev)
	}
	q.close()
	<-done
}
