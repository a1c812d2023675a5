package server

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An upload whose body trickles in is cut off (408) instead of holding its
// slot for the server's whole read timeout, and one address holds at most
// two uploads at once, so a few slow senders cannot keep everyone's
// pictures out.
func TestSlowAvatarUploadsHoldNoSlots(t *testing.T) {
	tr := startRelay(t, fastConfig(t))
	addr := tr.srv.Addr().String()

	// stall sends the headers and a few bytes of a 100 KB body, then waits.
	stall := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		req := "POST /v1/avatars HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89PNG"
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(frameWait))
		return c, bufio.NewReader(c)
	}
	status := func(r *bufio.Reader) int {
		t.Helper()
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("no answer to a stalled upload: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	inFlight := func(n int) func() bool {
		return func() bool {
			tr.srv.uploading.mu.Lock()
			defer tr.srv.uploading.mu.Unlock()
			return tr.srv.uploading.n["127.0.0.1"] == n
		}
	}

	// Two stalled uploads are all one address may hold.
	tr.srv.avatarBodyWait = time.Minute
	c1, _ := stall()
	c2, _ := stall()
	waitFor(t, frameWait, "both uploads to be read", inFlight(2))
	if _, r := stall(); status(r) != http.StatusTooManyRequests {
		t.Error("a third upload from the same address was not refused with 429")
	}
	c1.Close()
	c2.Close()
	waitFor(t, frameWait, "the abandoned uploads to end", inFlight(0))

	// A body that does not arrive in time gets 408 and frees its slot.
	tr.srv.avatarBodyWait = 300 * time.Millisecond
	if _, r := stall(); status(r) != http.StatusRequestTimeout {
		t.Error("a stalled upload was not cut off with 408")
	}
	waitFor(t, frameWait, "the cut upload to end", inFlight(0))
	req, _ := http.NewRequest("POST", tr.web+"/v1/avatars", strings.NewReader(string(pngBytes(t, 8, 8))))
	req.Header.Set("Content-Type", "image/png")
	if resp, body := tr.do(req); resp.StatusCode != http.StatusCreated {
		t.Errorf("an upload after the stalled ones: HTTP %d %s", resp.StatusCode, body)
	}
}
