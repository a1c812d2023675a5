package wsconn

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// The heartbeat fast path answers exactly as the general path would, and
// leaves every other spelling of a ping to the general path.
func TestPingFastPathMatchesTheProtocolEncoder(t *testing.T) {
	for _, v := range []int64{0, 7, -5, 1763700001234, -999999999999999999, 999999999999999999} {
		data, _ := protocol.Encode(&protocol.Ping{T: v})
		got, ok := ParsePing(websocket.TextMessage, data)
		if !ok || got != v {
			t.Errorf("ParsePing(%s) = %d, %v; want %d, true", data, got, ok, v)
		}
		want, _ := protocol.Encode(&protocol.Pong{T: v, ServerTime: 1763700009999})
		if pong := AppendPong(nil, v, 1763700009999); string(pong) != string(want) {
			t.Errorf("appendPong = %s, want %s", pong, want)
		}
	}
	for _, s := range []string{
		`{"type":"ping","t":01}`, `{"type":"ping","t":}`, `{"type":"ping","t":-}`,
		`{"type":"ping","t":1.5}`, `{"type":"ping","t":1 }`, `{"type":"ping","t":"1"}`,
		`{"type":"ping","t":1234567890123456789}`, `{"type":"ping","t":1,"x":2}`,
		`{"t":1,"type":"ping"}`, `{"type":"ping","t":1}x`,
	} {
		if _, ok := ParsePing(websocket.TextMessage, []byte(s)); ok {
			t.Errorf("parsePing accepted %s", s)
		}
	}
	data, _ := protocol.Encode(&protocol.Ping{T: 1})
	if _, ok := ParsePing(websocket.BinaryMessage, data); ok {
		t.Error("parsePing accepted a binary frame")
	}
}

func TestCloseReasonFitsAFrame(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	r := CloseReason(long)
	if len(r) > 123 || !utf8.ValidString(r) || !strings.HasPrefix(long, r) {
		t.Fatalf("CloseReason: %d bytes, valid %v", len(r), utf8.ValidString(r))
	}
	if CloseReason("short") != "short" {
		t.Fatal("short reason changed")
	}
}
