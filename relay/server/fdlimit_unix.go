//go:build unix

package server

import "syscall"

// openFileLimit is the process's soft limit on open descriptors (Go raises it
// to the hard limit at start), or 0 if it cannot be read.
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	cur := uint64(r.Cur)
	if cur > 1<<30 { // RLIM_INFINITY and the like
		return 1 << 30
	}
	return int(cur)
}
