package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(status)
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	defer srv.Close()

	if err := check(srv.URL+"/healthz", time.Second); err != nil {
		t.Fatalf("healthy relay reported unhealthy: %v", err)
	}
	status = http.StatusServiceUnavailable // a relay shutting down
	if err := check(srv.URL+"/healthz", time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 reported as %v", err)
	}
	status = http.StatusOK
	if err := check(srv.URL+"/moved", time.Second); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("redirect reported as %v", err)
	}
	if err := check(srv.URL+"/slow", 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "within 100ms") {
		t.Fatalf("hung endpoint reported as %v", err)
	}
}

func TestCheckNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if err := check("http://"+addr+"/healthz", time.Second); err == nil {
		t.Fatal("a closed port reported healthy")
	}
}
