//go:build linux

package rawsys

import (
	"syscall"
	"unsafe"
)

// EPOLLET is the edge-triggered flag as the uint32 an event mask is
// (syscall declares it as a negative int).
const EPOLLET = 1 << 31

// Read and Write are one non-blocking read or write on fd; EAGAIN means
// nothing to read, or no room to write.
func Read(fd uintptr, p []byte) (int, error) {
	return syscall3(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
}

func Write(fd uintptr, p []byte) (int, error) {
	return syscall3(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
}

// EpollWaitNow returns the ready events without waiting (timeout 0, no
// signal mask; epoll_pwait exists on every Linux architecture, epoll_wait
// not on arm64).
func EpollWaitNow(epfd uintptr, events []syscall.EpollEvent) (int, error) {
	return syscall3(syscall.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)))
}

// syscall3 makes a non-blocking syscall of up to three arguments (the rest
// zero), retrying EINTR.
func syscall3(trap, a1, a2, a3 uintptr) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall6(trap, a1, a2, a3, 0, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		default:
			return 0, errno
		}
	}
}
