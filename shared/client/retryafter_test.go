package client

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// A relay that asks the client to stay away for a while (failed sign-ins
// from its address, rooms made too fast) is obeyed: the next attempt waits
// at least that long, however short the backoff would be.
func TestReconnectWaitsAsLongAsTheRelayAsks(t *testing.T) {
	t.Run("hello refused with retry_after_ms", func(t *testing.T) {
		relay := newScriptedRelay(t)
		clk := newFakeClock()
		c, err := New(Config{URL: relay.addr, Room: "lobby", Name: "ann", Key: testKey, Clock: clk, Rand: randSeq(0)})
		if err != nil {
			t.Fatal(err)
		}
		events := c.Events()
		runClient(t, c)
		p := relay.accept()
		p.send(&protocol.Error{Code: protocol.ErrRateLimited, Message: "too many failed sign-ins", RetryAfterMS: 7000})
		p.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.CloseThrottled, "wait"), time.Now().Add(time.Second))
		s := nextState(t, events, Reconnecting)
		if got := s.NextTry.Sub(clk.Now()); got != 7*time.Second {
			t.Errorf("next try in %v, want the 7 s the relay asked for", got)
		}
	})
	t.Run("upgrade refused with Retry-After", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "9")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":"throttled","message":"too many failed sign-ins from your address: wait 9 s, then try again"}`))
		}))
		t.Cleanup(srv.Close)
		clk := newFakeClock()
		c, err := New(Config{URL: srv.Listener.Addr().String(), Room: "lobby", Name: "ann", Key: testKey, Clock: clk, Rand: randSeq(0)})
		if err != nil {
			t.Fatal(err)
		}
		events := c.Events()
		runClient(t, c)
		s := nextState(t, events, Reconnecting)
		if got := s.NextTry.Sub(clk.Now()); got != 9*time.Second {
			t.Errorf("next try in %v, want the 9 s of Retry-After", got)
		}
		if !strings.Contains(s.LastError, "too many failed sign-ins") {
			t.Errorf("the person is not told why: %q", s.LastError)
		}
	})
}
