package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// Two relays in one process (tests, host mode) must not collide on registration.
func TestTwoInstancesAndExposition(t *testing.T) {
	a, b := New(), New()
	a.Connections.Inc()
	b.Connections.Add(3)
	a.Evictions.WithLabelValues(EvictHeartbeat).Inc()
	a.RoomMembers.WithLabelValues("lobby").Set(2)

	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"heartline_connections 1",
		`heartline_evictions_total{reason="heartbeat_timeout"} 1`,
		`heartline_room_members{room="lobby"} 2`,
		`heartline_evictions_total{reason="slow_consumer"} 0`, // exported before the first one
		"heartline_fanout_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics output lacks %q", want)
		}
	}
}
