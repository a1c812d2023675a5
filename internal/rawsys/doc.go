// Package rawsys makes the non-blocking syscalls of Heartline's epoll
// readers, the relay's reactor and the load generator's lean sockets, with
// RawSyscall: they never block, so the runtime need not hand the P off, and
// skipping entersyscall keeps them from waking the runtime's monitor thread
// (sysmon), which otherwise went through a few dozen short sleeps after every
// burst of pings. Linux only.
package rawsys
