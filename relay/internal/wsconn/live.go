package wsconn

import "sync/atomic"

// Liveness is what the relay's sweeper reads of a connection. It is kept in
// a table of its own, in chunks a sweep reads in order: at 19,000
// connections, visiting every connection's struct once a second (a cache
// miss each) was most of an idle relay's CPU.
//
// Only the connection's reader (or the reactor while it reads the socket)
// and holders of the connection's lock that have checked that its reader is
// not done write a slot, so a slot is never written after its connection
// left the table and the slot went to another connection.
type Liveness struct {
	LastSeen atomic.Int64  // unix nanos of the last inbound frame (control frames too)
	Flags    atomic.Uint32 // Joined | Busy | Closed
	Opened   int64         // unix nanos of the upgrade
}

const (
	Joined uint32 = 1 << iota // said hello and was welcomed
	Busy                      // its reader is handling a frame: alive, not silent
	Closed                    // closing: the sweeper leaves it alone
)

const liveChunk = 1024

// Table is a set of connections with their liveness slots. It has no lock
// of its own: its owner guards it.
type Table[C comparable] struct {
	live  []*[liveChunk]Liveness
	conns []C // by slot; the zero C: free
	free  []int
	n     int
}

// Add gives c a slot, which starts out alive as of now (unix nanos).
func (t *Table[C]) Add(c C, now int64) (slot int, l *Liveness) {
	var i int
	if k := len(t.free); k > 0 {
		i, t.free = t.free[k-1], t.free[:k-1]
	} else {
		i = len(t.conns)
		var zero C
		t.conns = append(t.conns, zero)
		if i/liveChunk == len(t.live) {
			t.live = append(t.live, new([liveChunk]Liveness))
		}
	}
	l = &t.live[i/liveChunk][i%liveChunk]
	l.LastSeen.Store(now)
	l.Flags.Store(0)
	l.Opened = now
	t.conns[i] = c
	t.n++
	return i, l
}

// Remove frees slot.
func (t *Table[C]) Remove(slot int) {
	var zero C
	t.conns[slot] = zero
	t.free = append(t.free, slot)
	t.n--
}

// Len is the number of connections in the table.
func (t *Table[C]) Len() int { return t.n }

// Each calls f for every connection with its slot, in slot order.
func (t *Table[C]) Each(f func(c C, l *Liveness)) {
	var zero C
	for i, c := range t.conns {
		if c != zero {
			f(c, &t.live[i/liveChunk][i%liveChunk])
		}
	}
}
