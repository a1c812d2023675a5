//go:build !linux

package server

import "errors"

// Without epoll every connection keeps its own reader goroutine, blocked in
// gorilla's read while idle.
type reactor struct{}

const reactorAvailable = false

var errNoReactor = errors.New("no epoll on this system")

func newReactor() (*reactor, error)  { return nil, errNoReactor }
func (r *reactor) run()              {}
func (r *reactor) close()            {}
func (r *reactor) add(c *conn) error { return errNoReactor }
func (r *reactor) forget(c *conn)    {}

func rawRead(fd uintptr, p []byte) (int, error)  { return 0, errNoReactor }
func rawWrite(fd uintptr, p []byte) (int, error) { return 0, errNoReactor }
