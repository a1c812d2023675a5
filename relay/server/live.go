package server

import "sync/atomic"

// liveness is what the sweeper reads of a connection. It is kept in a table
// of its own, in chunks a sweep reads in order: at 19,000 connections,
// visiting every connection's struct once a second (a cache miss each) was
// most of an idle relay's CPU.
//
// Only the connection's reader (or the reactor while it reads the socket)
// and holders of conn.mu that have checked readerDone write a slot, so a
// slot is never written after its connection unregistered and the slot went
// to another connection.
type liveness struct {
	lastSeen atomic.Int64  // unix nanos of the last inbound frame (control frames too)
	flags    atomic.Uint32 // liveJoined | liveBusy | liveClosed
	opened   int64         // unix nanos of the upgrade
}

const (
	liveJoined uint32 = 1 << iota // said hello and was welcomed
	liveBusy                      // its reader is handling a frame: alive, not silent
	liveClosed                    // closing: the sweeper leaves it alone
)

const liveChunk = 1024

// connTable is the relay's set of connections with their liveness slots
// (guarded by Server.connsMu).
type connTable struct {
	live  []*[liveChunk]liveness
	conns []*conn // by slot; nil: free
	free  []int
	n     int
}

// add gives c a slot, which starts out alive as of now (unix nanos).
func (t *connTable) add(c *conn, now int64) {
	var i int
	if k := len(t.free); k > 0 {
		i, t.free = t.free[k-1], t.free[:k-1]
	} else {
		i = len(t.conns)
		t.conns = append(t.conns, nil)
		if i/liveChunk == len(t.live) {
			t.live = append(t.live, new([liveChunk]liveness))
		}
	}
	l := &t.live[i/liveChunk][i%liveChunk]
	l.lastSeen.Store(now)
	l.flags.Store(0)
	l.opened = now
	t.conns[i] = c
	c.slot, c.live = i, l
	t.n++
}

func (t *connTable) remove(c *conn) {
	t.conns[c.slot] = nil
	t.free = append(t.free, c.slot)
	t.n--
}

// each calls f for every connection with its slot, in slot order.
func (t *connTable) each(f func(c *conn, l *liveness)) {
	for i, c := range t.conns {
		if c != nil {
			f(c, &t.live[i/liveChunk][i%liveChunk])
		}
	}
}
