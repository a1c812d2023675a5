package history

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// WriterOptions tune a Writer; the zero value is fine.
type WriterOptions struct {
	// MaxQueued bounds the messages waiting to be written (default 100,000:
	// minutes of the busiest room). Past it Put refuses and reports through
	// OnError: the room then shows a gap there, which the relay's history
	// can fill, instead of the app's memory growing without end.
	MaxQueued int
	// MaxBatch bounds the messages written in one transaction (default
	// 5,000), so that one commit never takes long.
	MaxBatch int
	// OnStored hears, after each commit, which messages of a room are now
	// on disk (in the order they were handed over, those the device
	// already held included). It runs on the writer's goroutine: keep it
	// short, and never call Flush or Close from it.
	OnStored func(key RoomKey, stored []Ref)
	// OnError hears of writes that failed (a full disk: on the writer's
	// goroutine) or were refused (a full queue or a closed writer: on the
	// goroutine that called Put); those messages are not on the device
	// (nil: logged to Options.Log).
	OnError func(err error)
}

// Writer stores what the app receives on a goroutine of its own: Put,
// MarkGap and MarkRead hand their work over in O(1) and never wait on the
// disk. Everything handed over is written in order, many messages per
// transaction. Close writes what is queued and stops the goroutine.
type Writer struct {
	s    *Store
	opts WriterOptions

	mu       sync.Mutex
	queue    []writeOp
	queued   int  // messages in queue
	closed   bool // no more work accepted
	handed   uint64
	written  uint64 // ops handed over and done (written or failed)
	wake     chan struct{}
	done     chan struct{} // closed when the goroutine has returned
	progress *sync.Cond    // signalled when written moves
}

type writeOp struct {
	key  RoomKey
	msgs []Message // Put
	gap  *Gap      // MarkGap
	read *Cursor   // MarkRead
}

func (op writeOp) describe() string {
	switch {
	case op.gap != nil:
		return "a gap marker of " + op.key.Room
	case op.read != nil:
		return "the read marker of " + op.key.Room
	}
	return fmt.Sprintf("%d messages of %s", len(op.msgs), op.key.Room)
}

// NewWriter starts a Writer for the store. Close it before the Store.
func (s *Store) NewWriter(opts WriterOptions) *Writer {
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = 100_000
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 5_000
	}
	w := &Writer{s: s, opts: opts, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.progress = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Put hands msgs over to be stored; it reports false when the writer is
// closed or its queue is full (the messages are then not stored). The
// writer keeps msgs: do not change the slice afterwards.
func (w *Writer) Put(key RoomKey, msgs ...Message) bool {
	for i, m := range msgs {
		if m.Seq == 0 || m.Seq > maxSeq {
			// Keep the rest: one bad message must not fail a batch.
			w.report(fmt.Errorf("history: message %q of %s has seq %d: not stored", m.ID, key.Room, m.Seq))
			msgs = append(msgs[:i:i], msgs[i+1:]...)
			return w.Put(key, msgs...)
		}
	}
	if len(msgs) == 0 {
		return true
	}
	return w.push(writeOp{key: key, msgs: msgs}, len(msgs))
}

// MarkGap hands a gap marker over (see Store.MarkGap), written after every
// message handed over before it.
func (w *Writer) MarkGap(key RoomKey, g Gap) bool {
	return w.push(writeOp{key: key, gap: &g}, 1)
}

// MarkRead hands a read marker over (see Store.MarkRead).
func (w *Writer) MarkRead(key RoomKey, c Cursor) bool {
	return w.push(writeOp{key: key, read: &c}, 1)
}

func (w *Writer) push(op writeOp, n int) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.report(fmt.Errorf("history: %w: %s not stored", ErrClosed, op.describe()))
		return false
	}
	if w.queued+n > w.opts.MaxQueued {
		w.mu.Unlock()
		w.report(fmt.Errorf("history: the write queue is full (%d messages waiting: is the disk stalled?): %s not stored", w.queued, op.describe()))
		return false
	}
	w.queue = append(w.queue, op)
	w.queued += n
	w.handed++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

func (w *Writer) report(err error) {
	if w.opts.OnError != nil {
		w.opts.OnError(err)
	} else {
		w.s.log.Warn("history: write failed", "err", err)
	}
}

// Flush returns once everything handed over before it is written (or has
// failed and been reported), or when ctx ends.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.handed
	w.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.progress.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.written < target {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.progress.Wait()
	}
	return nil
}

// ClearRoom drops what is queued for the room, then clears the room on the
// device (Store.ClearRoom), so that messages handed over before the person
// asked do not come back afterwards. Messages handed over after it returns
// are stored as usual.
func (w *Writer) ClearRoom(ctx context.Context, key RoomKey) error {
	key = key.norm()
	w.mu.Lock()
	kept := w.queue[:0]
	dropped := 0
	for _, op := range w.queue {
		if op.key.norm() == key {
			w.queued -= max(len(op.msgs), 1)
			dropped++
			continue
		}
		kept = append(kept, op)
	}
	clear(w.queue[len(kept):])
	w.queue = kept
	w.written += uint64(dropped) // done, as far as Flush is concerned
	w.progress.Broadcast()
	w.mu.Unlock()
	// A batch already taken off the queue may hold the room's messages:
	// let it land, then clear.
	if err := w.Flush(ctx); err != nil {
		return err
	}
	return w.s.ClearRoom(ctx, key)
}

// Close writes everything queued, stops the writer and returns; later
// hand-overs are refused.
func (w *Writer) Close() error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	<-w.done
	return nil
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		batch, n := w.take()
		closed := w.closed
		w.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-w.wake
			continue
		}
		w.write(batch)
		w.mu.Lock()
		w.queued -= n
		w.written += uint64(len(batch))
		w.progress.Broadcast()
		w.mu.Unlock()
	}
}

// take removes up to MaxBatch messages' worth of ops from the queue;
// under mu.
func (w *Writer) take() ([]writeOp, int) {
	n, i := 0, 0
	for ; i < len(w.queue); i++ {
		k := max(len(w.queue[i].msgs), 1)
		if i > 0 && n+k > w.opts.MaxBatch {
			break
		}
		n += k
	}
	batch := w.queue[:i:i]
	w.queue = w.queue[i:]
	if len(w.queue) == 0 {
		w.queue = nil // let the backing array go
	}
	return batch, n
}

// write stores a batch in one transaction and reports it.
func (w *Writer) write(batch []writeOp) {
	ctx := context.Background()
	var stored map[RoomKey][]Ref
	var order []RoomKey
	err := w.s.writeTx(ctx, func(tx *sql.Tx) error {
		stored = make(map[RoomKey][]Ref)
		order = order[:0]
		ins, err := prepareInsert(ctx, tx)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, op := range batch {
			var err error
			switch {
			case op.gap != nil:
				err = w.s.markGapTx(ctx, tx, op.key, *op.gap)
			case op.read != nil:
				err = w.s.markReadTx(ctx, tx, op.key, *op.read)
			default:
				err = w.s.putTx(ctx, tx, ins, op.key, op.msgs)
				if err == nil && w.opts.OnStored != nil {
					if _, ok := stored[op.key]; !ok {
						order = append(order, op.key)
					}
					for _, m := range op.msgs {
						stored[op.key] = append(stored[op.key], m.Ref())
					}
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		msgs := 0
		for _, op := range batch {
			msgs += len(op.msgs)
		}
		w.report(fmt.Errorf("history: storing %d messages: %w", msgs, err))
		return
	}
	if w.opts.OnStored != nil {
		for _, k := range order {
			w.opts.OnStored(k, stored[k])
		}
	}
}
