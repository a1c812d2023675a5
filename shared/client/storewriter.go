package client

import (
	"log/slog"
	"sync"
)

// storeOpKind is one kind of outbox store write.
type storeOpKind int

const (
	opPut storeOpKind = iota
	opMoveToEnd
	opDelete
)

// storeOp is one outbox change still to be written to the store.
type storeOp struct {
	kind storeOpKind
	item OutboxItem // opPut, opMoveToEnd
	id   string     // opDelete
}

// storeWriter writes outbox changes to the store in the order they were
// made, on a goroutine of its own, so that neither the caller of Send (the
// UI goroutine) nor a link ever waits on the disk. The goroutine runs only
// while there is something to write, so a Client that is never Run leaks
// nothing; wait returns once every change made so far is written.
//
// The price is a window: a change is in memory (and its event emitted)
// before it is on disk. A clean stop closes the window (Run returns only
// once the store is up to date); a crash or power cut inside it, usually a
// few milliseconds, loses the changes not yet written.
type storeWriter struct {
	st  *serialStore
	log *slog.Logger
	// notSaved hears of a message whose text could not be written.
	notSaved func(id string, err error)

	mu      sync.Mutex
	ops     []storeOp
	running bool
	idle    sync.Cond // signalled when running turns false
}

func newStoreWriter(st *serialStore, log *slog.Logger, notSaved func(id string, err error)) *storeWriter {
	w := &storeWriter{st: st, log: log, notSaved: notSaved}
	w.idle.L = &w.mu
	return w
}

// push queues op after every op pushed before it. It never blocks on the
// store.
func (w *storeWriter) push(op storeOp) {
	w.mu.Lock()
	w.ops = append(w.ops, op)
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.drain()
	}
}

// wait returns once every op pushed so far is written (or failed).
func (w *storeWriter) wait() {
	w.mu.Lock()
	for w.running {
		w.idle.Wait()
	}
	w.mu.Unlock()
}

func (w *storeWriter) drain() {
	for {
		w.mu.Lock()
		ops := w.ops
		w.ops = nil
		if len(ops) == 0 {
			w.running = false
			w.idle.Broadcast()
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.write(ops)
	}
}

// write applies ops in order; a run of deletes (a burst of acks) becomes
// one DeleteMany.
func (w *storeWriter) write(ops []storeOp) {
	for i := 0; i < len(ops); {
		op := ops[i]
		switch op.kind {
		case opPut:
			if err := w.st.Put(op.item); err != nil {
				w.log.Warn("outbox: cannot save a message", "id", op.item.ID, "status", op.item.Status, "err", err)
				w.notSaved(op.item.ID, err)
			}
			i++
		case opMoveToEnd:
			if err := w.st.moveToEnd(op.item); err != nil {
				w.log.Warn("outbox: cannot move a retried message", "id", op.item.ID, "err", err)
				w.notSaved(op.item.ID, err)
			}
			i++
		case opDelete:
			j := i
			var ids []string
			for ; j < len(ops) && ops[j].kind == opDelete; j++ {
				ids = append(ids, ops[j].id)
			}
			if err := w.st.DeleteMany(ids); err != nil {
				// The relay dedups ids: a stale entry only costs a resend later.
				w.log.Warn("outbox: cannot remove messages", "count", len(ids), "err", err)
			}
			i = j
		}
	}
}
