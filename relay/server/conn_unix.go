//go:build unix

package server

import (
	"io"
	"syscall"
	"unsafe"
)

// shallowReads: on Unix the reader waits for its socket in the netpoller
// and reads it with plain syscalls (see awaitReadable).
const shallowReads = true

// readable is the raw.Read callback: false means "nothing yet, wait in the
// netpoller". It is a method value cached in onReadable (no allocation per
// wait).
func (b *batchConn) readable(fd uintptr) bool {
	buf, _ := readPool.Get().(*[]byte)
	if buf == nil {
		return peekReadable(fd)
	}
	for {
		n, err := syscall.Read(int(fd), (*buf)[:cap(*buf)])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			readPool.Put(buf)
			return false
		case n > 0:
			*buf = (*buf)[:n]
			b.pending, b.pendingOff = buf, 0
		default:
			readPool.Put(buf)
			if err == nil {
				err = io.EOF
			}
			b.pendingErr = err
		}
		return true
	}
}

// peekReadable reports whether fd has bytes (or an error or EOF) to read,
// leaving them in the socket for gorilla's own read.
func peekReadable(fd uintptr) bool {
	var one [1]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&one[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}
