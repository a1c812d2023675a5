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
	a.WatchRooms(func(yield func(string, int)) { yield("lobby", 2); yield("hall", 12) }, false)
	b.WatchRooms(func(yield func(string, int)) { yield("lobby", 2) }, true)

	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"heartline_connections 1",
		`heartline_evictions_total{reason="heartbeat_timeout"} 1`,
		`heartline_rooms_by_members{members="2-10"} 1`,
		`heartline_rooms_by_members{members="11-100"} 1`,
		"heartline_room_members_max 12",
		"heartline_members 14",
		`heartline_evictions_total{reason="slow_consumer"} 0`, // exported before the first one
		"heartline_fanout_duration_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics output lacks %q", want)
		}
	}
	if strings.Contains(string(body), "lobby") {
		t.Error("room names are exported without the opt-in")
	}
	rec = httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body, _ := io.ReadAll(rec.Body); !strings.Contains(string(body), `heartline_room_members{room="lobby"} 2`) {
		t.Error("the per-room series is missing with the opt-in")
	}
}
