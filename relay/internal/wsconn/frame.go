package wsconn

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// AppendFrameHeader appends a final, unmasked server frame header (RFC 6455
// section 5.2) for a payload of n bytes.
func AppendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n < 1<<16:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// CloseReason fits text into a close frame (at most 123 bytes), cutting at a
// character boundary; a longer reason would make the close frame invalid.
func CloseReason(text string) string {
	const max = 120
	if len(text) <= max {
		return text
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut]
}

// pingPrefix is how protocol.Encode, and so every Heartline client, starts a
// ping frame.
var pingPrefix = []byte(`{"type":"ping","t":`)

// ParsePing recognizes a heartbeat written exactly as protocol.Encode writes
// it ({"type":"ping","t":<integer>}) without the JSON decoder, which costs
// several times more than the rest of a heartbeat's handling. Anything else
// (spaces, other fields, odd numbers) goes to the JSON decoder, which decides.
func ParsePing(typ int, data []byte) (int64, bool) {
	if typ != websocket.TextMessage {
		return 0, false
	}
	rest, ok := bytes.CutPrefix(data, pingPrefix)
	if !ok || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return 0, false
	}
	digits := rest[:len(rest)-1]
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	// At most 18 digits cannot overflow; a leading zero is not JSON.
	if len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	var t int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		t = t*10 + int64(d-'0')
	}
	if neg {
		t = -t
	}
	return t, true
}

// AppendPong appends protocol.Encode(&protocol.Pong{T: t, ServerTime: now}).
func AppendPong(b []byte, t, now int64) []byte {
	b = append(b, `{"type":"pong","t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"server_time":`...)
	b = strconv.AppendInt(b, now, 10)
	return append(b, '}')
}
