package client

import "sync"

// queue is an unbounded FIFO with a wake-up signal. Producers never block,
// which is how the engine stays responsive while a reader (the UI, a slow
// socket) lags behind.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	// signal holds at most one token: "something changed since you last looked".
	signal chan struct{}
}

func newQueue[T any]() *queue[T] {
	return &queue[T]{signal: make(chan struct{}, 1)}
}

// push appends v; it reports false (and drops v) once the queue is closed.
func (q *queue[T]) push(v ...T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v...)
	q.mu.Unlock()
	q.wake()
	return true
}

func (q *queue[T]) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// close stops further pushes; items already queued can still be taken.
func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

// take removes and returns everything queued, and whether the queue is closed.
func (q *queue[T]) take() ([]T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items, q.closed
}

// pumpEvents moves events from q to out in order until q is closed and
// drained, then closes out. It is the only goroutine that can block on the
// reader of out.
func pumpEvents[T any](q *queue[T], out chan<- T) {
	defer close(out)
	for {
		items, closed := q.take()
		for _, v := range items {
			out <- v
		}
		if len(items) == 0 {
			if closed {
				return
			}
			<-q.signal
		}
	}
}

// deliverEvents hands events from q to deliver in batches of at most
// MaxEventBatch, in order, until q is closed and drained, then closes done.
// Like pumpEvents it is the only goroutine a slow deliver holds up.
func deliverEvents[T any](q *queue[T], deliver func([]T), done chan<- T) {
	defer close(done)
	for {
		items, closed := q.take()
		for len(items) > 0 {
			n := min(len(items), MaxEventBatch)
			deliver(items[:n:n])
			items = items[n:]
		}
		if closed { // nothing can be pushed after close: all is delivered
			return
		}
		<-q.signal
	}
}
