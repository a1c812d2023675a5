package server

import (
	"syscall"
	"testing"
	"time"
)

// Accepted sockets carry the configured TCP keepalive (the seed's
// tcp_keepidle / keepinterval / keepcount).
func TestTCPKeepAliveSettings(t *testing.T) {
	cfg := fastConfig(t)
	cfg.KeepAliveIdle, cfg.KeepAliveInterval, cfg.KeepAliveCount = 42*time.Second, 7*time.Second, 4
	tr := startRelay(t, cfg)
	tr.dial(nil)
	var c *conn
	waitFor(t, 2*time.Second, "the connection", func() bool {
		if conns := tr.srv.snapshotConns(); len(conns) > 0 {
			c = conns[0]
		}
		return c != nil
	})
	sc, ok := c.Socket().Conn.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no raw socket", c.Socket().Conn)
	}
	raw, _ := sc.SyscallConn()
	var on, idle, intvl, cnt int
	raw.Control(func(fd uintptr) {
		on, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		intvl, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		cnt, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	})
	if on != 1 || idle != 42 || intvl != 7 || cnt != 4 {
		t.Errorf("keepalive on=%d idle=%d interval=%d count=%d, want 1 42 7 4", on, idle, intvl, cnt)
	}
}
