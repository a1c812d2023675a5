//go:build linux

package wsconn

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/heartline/heartline/internal/rawsys"
)

// Reactor watches the sockets of idle connections with one epoll instance.
// An idle member then has no goroutine at all (a parked reader's stack was a
// quarter of its memory), and a heartbeat costs no goroutine either: the
// reactor reads the ping and writes the pong itself. Any other input hands
// the connection to a reader goroutine, which runs until the socket has
// nothing more to read and then parks the connection here again.
//
// The epoll instance is itself waited for in Go's netpoller, so the reactor
// is an ordinary goroutine that sleeps while nothing happens and takes every
// socket that became readable in one wake-up.
type Reactor struct {
	file *os.File // the epoll instance (never call its Fd: that makes it blocking)
	epfd int
	raw  syscall.RawConn

	mu    sync.Mutex
	conns []watched // by connection slot; an event carries the slot and the serial's low half

	// Owned by the reactor goroutine.
	events [256]syscall.EpollEvent
	ready  []readyConn
}

// A Watcher is told when its parked socket became readable; hangup says the
// peer also shut its side down (or the socket failed).
type Watcher interface {
	Readable(hangup bool)
}

type watched struct {
	w      Watcher
	serial uint32
}

// Available tells whether connections can park with a reactor here.
const Available = true

// NewReactor makes a reactor; Run runs it until Close.
func NewReactor() (*Reactor, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the netpoller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	return &Reactor{file: f, epfd: fd, raw: raw}, nil
}

// Run dispatches readiness until Close.
func (r *Reactor) Run() {
	// poll never reports done: RawConn.Read alternates between it and the
	// netpoller until the epoll file is closed.
	r.raw.Read(r.poll)
}

// Close stops Run.
func (r *Reactor) Close() { r.file.Close() }

// poll takes every event the epoll instance holds, without blocking; false
// sends the goroutine back to the netpoller until the next one.
func (r *Reactor) poll(epfd uintptr) bool {
	for {
		n, err := rawsys.EpollWaitNow(epfd, r.events[:])
		if err != nil || n <= 0 {
			return false
		}
		r.ready = r.ready[:0]
		r.mu.Lock()
		for _, ev := range r.events[:n] {
			// A slot is reused once its connection has ended: the serial
			// tells a late event for the old one from the new one's.
			if slot := int(uint32(ev.Fd)); slot < len(r.conns) {
				if c := r.conns[slot]; c.w != nil && c.serial == uint32(ev.Pad) {
					r.ready = append(r.ready, readyConn{c.w, ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0})
				}
			}
		}
		r.mu.Unlock()
		for i, rc := range r.ready {
			rc.w.Readable(rc.hangup)
			r.ready[i] = readyConn{}
		}
	}
}

// Add watches the socket of w (edge-triggered: one event per arrival, so
// the socket is never re-armed). slot is w's slot in the connection table
// (unique among open connections), serial tells its events from those of
// the slot's earlier owner. It fails only when the kernel refuses, and the
// connection then keeps its own reader goroutine.
func (r *Reactor) Add(w Watcher, slot int, serial uint64, b *BatchConn) error {
	if b.raw == nil {
		return fmt.Errorf("not a plain TCP socket")
	}
	r.mu.Lock()
	if slot >= len(r.conns) {
		r.conns = append(r.conns, make([]watched, slot+1-len(r.conns))...)
	}
	r.conns[slot] = watched{w, uint32(serial)}
	r.mu.Unlock()
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | rawsys.EPOLLET,
		Fd:     int32(slot),
		Pad:    int32(uint32(serial)),
	}
	var ctlErr error
	err := b.raw.Control(func(fd uintptr) {
		ctlErr = syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		r.Forget(w, slot)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// Forget drops w once its connection has ended (closing the socket already
// took it out of the epoll set; this drops events still in flight). It runs
// before w's slot goes back to the connection table.
func (r *Reactor) Forget(w Watcher, slot int) {
	r.mu.Lock()
	if slot < len(r.conns) && r.conns[slot].w == w {
		r.conns[slot] = watched{}
	}
	r.mu.Unlock()
}

// readyConn is a connection with input, and whether the peer also shut its
// side down (or the socket failed): that comes with the same edge as the
// last bytes, so the reader must see it even when those bytes were pings.
type readyConn struct {
	w      Watcher
	hangup bool
}

// rawRead and rawWrite are one non-blocking syscall each (rawsys says why
// raw); EAGAIN means nothing to read, or no room to write.
func rawRead(fd uintptr, p []byte) (int, error)  { return rawsys.Read(fd, p) }
func rawWrite(fd uintptr, p []byte) (int, error) { return rawsys.Write(fd, p) }
