//go:build linux

package main

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/heartline/heartline/internal/rawsys"
)

// The load generator shares the machine with the relays it measures, so
// every microsecond its thousand readers spend is taken from them. Read
// through Go's netpoller, each message costs two read syscalls: the one that
// gets it and the one that finds the socket empty before the goroutine
// parks. An edgeConn skips the second: a read that returns less than asked
// emptied the socket, so the reader waits for the next edge-triggered epoll
// event instead of asking again. That is what a separate client machine
// would cost the relays' machine: nothing.

// edgeConn is a TCP connection whose reads, once lean, wait for readiness
// from the shared edge poller instead of the netpoller.
type edgeConn struct {
	*net.TCPConn
	raw syscall.RawConn

	lean    bool          // set by goLean before the reader starts; reads are single-goroutine
	mayHave bool          // the last read filled its buffer: the socket may hold more
	ready   chan struct{} // an edge arrived (capacity 1: edges merge)
	hangup  atomic.Bool   // the peer shut its side (or the socket failed): read until the end
	closed  chan struct{}
	once    sync.Once
	slot    int
	serial  uint32
}

// newEdgeConn wraps a dialled connection; anything but TCP is left as it is.
func newEdgeConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || edges() == nil {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &edgeConn{TCPConn: tc, raw: raw, ready: make(chan struct{}, 1), closed: make(chan struct{})}
}

// goLean switches reads to the edge poller. It is called once the handshake
// and the welcome are read (they use read deadlines, which lean reads do not
// honour) and before the member's reader starts.
func goLean(c net.Conn) {
	ec, ok := c.(*edgeConn)
	if !ok {
		return
	}
	if err := edges().add(ec); err != nil {
		return // the netpoller keeps serving it
	}
	ec.mayHave, ec.lean = true, true
}

func (c *edgeConn) Read(p []byte) (int, error) {
	if !c.lean {
		return c.TCPConn.Read(p)
	}
	empty := false // a read here found nothing: wait even after a hangup
	for {
		// A short read drains the data an edge announced, but not the
		// peer's FIN that came with it: after a hangup, read to the end.
		if !c.mayHave && (empty || !c.hangup.Load()) {
			select {
			case <-c.ready:
			case <-c.closed:
				return 0, net.ErrClosed
			}
		}
		var n int
		var rerr error
		if err := c.raw.Read(func(fd uintptr) bool {
			n, rerr = rawsys.Read(fd, p)
			return true
		}); err != nil {
			return 0, err
		}
		switch {
		case rerr == syscall.EAGAIN:
			c.mayHave, empty = false, true
		case rerr != nil:
			return 0, rerr
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		default:
			c.mayHave = n == len(p)
			return n, nil
		}
	}
}

func (c *edgeConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		if c.lean {
			edges().forget(c)
		}
	})
	return c.TCPConn.Close()
}

// edgePoller is one epoll instance, itself waited for in Go's netpoller, that
// tells lean connections their socket became readable.
type edgePoller struct {
	epfd int
	raw  syscall.RawConn

	mu     sync.Mutex
	conns  []*edgeConn // by slot
	free   []int
	serial uint32
}

var (
	edgeOnce sync.Once
	edgeP    *edgePoller
)

// edges returns the process's poller, nil where epoll is refused.
func edges() *edgePoller {
	edgeOnce.Do(func() {
		p, err := newEdgePoller()
		if err == nil {
			edgeP = p
			go p.run()
		}
	})
	return edgeP
}

func newEdgePoller() (*edgePoller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	raw, err := os.NewFile(uintptr(fd), "epoll").SyscallConn()
	if err != nil {
		return nil, err
	}
	return &edgePoller{epfd: fd, raw: raw}, nil
}

func (p *edgePoller) add(c *edgeConn) error {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c.slot, p.free = p.free[n-1], p.free[:n-1]
	} else {
		c.slot = len(p.conns)
		p.conns = append(p.conns, nil)
	}
	p.serial++
	c.serial = p.serial
	p.conns[c.slot] = c
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | rawsys.EPOLLET, Fd: int32(c.slot), Pad: int32(c.serial)}
	var ctlErr error
	err := c.raw.Control(func(fd uintptr) { ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev) })
	if err = errors.Join(err, ctlErr); err != nil {
		p.forget(c)
	}
	return err
}

// forget frees c's slot; closing the socket takes it out of the epoll set,
// and the serial drops an event still in flight for it.
func (p *edgePoller) forget(c *edgeConn) {
	p.mu.Lock()
	if c.slot < len(p.conns) && p.conns[c.slot] == c {
		p.conns[c.slot] = nil
		p.free = append(p.free, c.slot)
	}
	p.mu.Unlock()
}

func (p *edgePoller) run() {
	var events [256]syscall.EpollEvent
	_ = p.raw.Read(func(epfd uintptr) bool {
		for {
			n, err := rawsys.EpollWaitNow(epfd, events[:])
			if err != nil || n <= 0 {
				return false // back to the netpoller until the next event
			}
			p.mu.Lock()
			for _, ev := range events[:n] {
				slot := int(uint32(ev.Fd))
				if slot >= len(p.conns) {
					continue
				}
				if c := p.conns[slot]; c != nil && c.serial == uint32(ev.Pad) {
					if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
						c.hangup.Store(true)
					}
					select {
					case c.ready <- struct{}{}:
					default:
					}
				}
			}
			p.mu.Unlock()
		}
	})
}
