package protocol

import (
	"strings"
	"testing"
)

// BenchmarkEncodeMessage is the relay's per-message cost before fan-out (the
// frame is encoded once for every member of the room).
func BenchmarkEncodeMessage(b *testing.B) {
	m := &Message{Seq: 123456, ID: "c-01JD7Q", From: alice, Text: strings.Repeat("chat text ", 8), TS: 1763700004000}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeSend is the relay's per-inbound-message parse.
func BenchmarkDecodeSend(b *testing.B) {
	frame := []byte(`{"type":"msg","id":"c-01JD7Q","text":"` + strings.Repeat("chat text ", 8) + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeClient(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMessage is a client's per-delivery parse (the load generator's too).
func BenchmarkDecodeMessage(b *testing.B) {
	frame, _ := Encode(&Message{Seq: 123456, ID: "c-01JD7Q", From: alice, Text: strings.Repeat("chat text ", 8), TS: 1763700004000})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRelay(frame); err != nil {
			b.Fatal(err)
		}
	}
}
