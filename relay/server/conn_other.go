//go:build !unix

package server

// shallowReads is false where the raw socket calls of conn_unix.go do not
// exist (Windows): readers then block inside gorilla's read, as before,
// with a larger idle stack.
const shallowReads = false

// readable is never called without shallowReads.
func (b *batchConn) readable(fd uintptr) bool { return true }
