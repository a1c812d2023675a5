//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

var peakRSSRe = regexp.MustCompile(`VmHWM:\s+(\d+) kB`)

// peakRSS is the most resident memory the process has had, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := peakRSSRe.FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmHWM in /proc status")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// clientFrom is an HTTP client whose connections come from source address ip,
// so that one test can be five hostile hosts.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
}

type uploadResult struct {
	status     int
	retryAfter string
	body       string
	err        error
}

// uploadAtOnce sends every picture at the same moment, five per source
// address (the per-address burst), and returns each answer.
func uploadAtOnce(addr string, ips []string, pictures [][]byte, contentTypes []string) []uploadResult {
	results := make([]uploadResult, len(pictures))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range pictures {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			client := clientFrom(ips[i%len(ips)])
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/v1/avatars", bytes.NewReader(pictures[i]))
			req.Header.Set("Content-Type", contentTypes[i])
			ready.Done()
			<-start
			resp, err := client.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results[i] = uploadResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(body)}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return results
}

// A public relay must survive the picture bombs of the hostile-upload report
// (a 190 KB progressive JPEG and 140 KB 16-bit PNGs that each took 190-320 MiB
// to decode) and a crowd of the costliest pictures it does accept, 25 at once
// from 5 addresses, within 256 MiB of resident memory. The relay is the real
// binary, so the figure is the process's peak RSS (VmHWM).
func TestAvatarUploadsStayWithinMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the relay binary")
	}
	const limit = 256 << 20
	bin := buildRelay(t)
	cmd, addr, _ := startProcess(t, bin, "--listen", "127.0.0.1:0", "--stun-port", "0", "--data-dir", t.TempDir())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid

	read := func(name string) []byte {
		b, err := os.ReadFile("avatar/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bombs := [][]byte{read("bomb-progressive-4096x3900.jpg"), read("bomb-rgba64-4096x4096.png"), read("bomb-rgba64-interlaced-4096x4096.png")}
	bombTypes := []string{"image/jpeg", "image/png", "image/png"}
	var pictures [][]byte
	var types []string
	for i := range 25 {
		pictures = append(pictures, bombs[i%3])
		types = append(types, bombTypes[i%3])
	}
	hosts := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"}
	refused := 0
	for i, r := range uploadAtOnce(addr, hosts, pictures, types) {
		switch {
		case r.err == nil && r.status == http.StatusUnprocessableEntity:
			refused++ // from its header
		case r.err == nil && r.status == http.StatusTooManyRequests && r.retryAfter != "":
			// more than an address may have in flight: told to come back
		default:
			t.Errorf("bomb %d: status %d err %v %s; want 422 (or 429)", i, r.status, r.err, r.body)
		}
	}
	if refused == 0 {
		t.Error("no bomb was refused from its header")
	}
	afterBombs := peakRSS(t, pid)

	// The costliest acceptable picture: 1920x1080, progressive, no chroma
	// subsampling (30 MiB to decode). The 10 that the per-address bound
	// admits at once would take 300 MiB decoded together (25: 750 MiB);
	// the decode budget makes them take turns.
	photo := read("photo-progressive-1920x1080.jpg")
	pictures, types = nil, nil
	for range 25 {
		pictures = append(pictures, photo)
		types = append(types, "image/jpeg")
	}
	hosts = []string{"127.0.0.7", "127.0.0.8", "127.0.0.9", "127.0.0.10", "127.0.0.11"}
	stored, busy := 0, 0
	for i, r := range uploadAtOnce(addr, hosts, pictures, types) {
		switch {
		case r.err != nil:
			t.Errorf("photo %d: %v", i, r.err)
		case r.status == http.StatusCreated:
			stored++
		case r.status == http.StatusTooManyRequests && r.retryAfter != "":
			busy++ // told when to come back: allowed, never unbounded
		default:
			t.Errorf("photo %d: status %d %s", i, r.status, r.body)
		}
	}
	if stored == 0 {
		t.Error("no photo was stored")
	}
	peak := peakRSS(t, pid)
	t.Logf("peak RSS after 25 bombs: %d MiB; after 25 costliest photos: %d MiB (%d stored, %d told to retry)",
		afterBombs>>20, peak>>20, stored, busy)
	if peak > limit {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, limit>>20)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("relay not healthy after the uploads: %v", err)
	}
	resp.Body.Close()
}
