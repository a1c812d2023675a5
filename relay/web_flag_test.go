package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heartline/heartline/relay/server"
)

// TestWebFlag: the browser client is on by default; --web=false or
// HEARTLINE_WEB=false leave / and /r/<room> answered with 404, while the
// websocket endpoint and the avatars stay.
func TestWebFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"default", nil, nil, http.StatusOK},
		{"flag off", nil, []string{"--web=false"}, http.StatusNotFound},
		{"env off", map[string]string{"HEARTLINE_WEB": "false"}, nil, http.StatusNotFound},
		{"flag wins over env", map[string]string{"HEARTLINE_WEB": "false"}, []string{"--web"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--stun-port", "0"}, tc.args...)
			o, _, err := parse(args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := server.New(o.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			defer srv.Shutdown(t.Context())
			for _, path := range []string{"/", "/r/lobby"} {
				resp, err := http.Get(ts.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, tc.want)
				}
				if tc.want == http.StatusOK && !strings.Contains(string(body), `<label for="name">Your name</label>`) {
					t.Errorf("GET %s is not the web client's page: %.200s", path, body)
				}
			}
			resp, err := http.Get(ts.URL + "/v1/avatars")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /v1/avatars: %d with the web client %v", resp.StatusCode, tc.want == http.StatusOK)
			}
		})
	}
}
