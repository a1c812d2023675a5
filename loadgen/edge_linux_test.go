//go:build linux

package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// edgePair dials a loopback listener through newEdgeConn and turns the
// client side lean, as join does after the welcome.
func edgePair(t *testing.T) (client net.Conn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	client = newEdgeConn(c)
	if _, ok := client.(*edgeConn); !ok {
		t.Fatalf("a TCP connection was not wrapped: %T", client)
	}
	goLean(client)
	if !client.(*edgeConn).lean {
		t.Fatal("the connection did not turn lean")
	}
	t.Cleanup(func() { client.Close(); s.Close() })
	return client, s
}

// Lean reads see every byte, in order, whether it comes in small pieces the
// reader waits for, in bursts bigger than its buffer, or already waiting.
func TestEdgeConnReadsEverything(t *testing.T) {
	client, server := edgePair(t)
	var chunks [][]byte
	var want bytes.Buffer
	for i := range 200 {
		chunks = append(chunks, bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*37%3000))
		want.Write(chunks[i])
	}
	go func() {
		for i, chunk := range chunks {
			if _, err := server.Write(chunk); err != nil {
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let the reader wait for an edge
			}
		}
		server.Close()
	}()
	got, err := io.ReadAll(readerOf(client, 512)) // smaller than many chunks: full reads
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes, want %d (or different bytes)", len(got), want.Len())
	}
}

// Closing the connection releases a read waiting for data, as closing a
// netpoller connection does (cut and leave rely on it).
func TestEdgeConnCloseReleasesAWaitingRead(t *testing.T) {
	client, _ := edgePair(t)
	done := make(chan error, 1)
	go func() {
		_, err := client.Read(make([]byte, 64))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read returned before any data or close: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	client.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

// readerOf reads c with a fixed buffer size, as gorilla's bufio reader does.
func readerOf(c net.Conn, size int) io.Reader {
	return io.LimitReader(struct{ io.Reader }{readFunc(func(p []byte) (int, error) {
		return c.Read(p[:min(len(p), size)])
	})}, 1<<30)
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }
