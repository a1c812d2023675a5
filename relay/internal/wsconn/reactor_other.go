//go:build !linux

package wsconn

import "errors"

// Without epoll every connection keeps its own reader goroutine, blocked in
// gorilla's read while idle.
type Reactor struct{}

// A Watcher is told when its parked socket became readable.
type Watcher interface {
	Readable(hangup bool)
}

// Available tells whether connections can park with a reactor here.
const Available = false

var errNoReactor = errors.New("no epoll on this system")

func NewReactor() (*Reactor, error) { return nil, errNoReactor }
func (r *Reactor) Run()             {}
func (r *Reactor) Close()           {}
func (r *Reactor) Add(w Watcher, slot int, serial uint64, b *BatchConn) error {
	return errNoReactor
}
func (r *Reactor) Forget(w Watcher, slot int) {}

func rawRead(fd uintptr, p []byte) (int, error)  { return 0, errNoReactor }
func rawWrite(fd uintptr, p []byte) (int, error) { return 0, errNoReactor }
