//go:build !linux

package main

import "net"

// Without epoll the load generator reads through Go's netpoller.
func newEdgeConn(c net.Conn) net.Conn { return c }

func goLean(net.Conn) {}
