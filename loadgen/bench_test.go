package main

import (
	"strings"
	"testing"

	"github.com/heartline/heartline/shared/protocol"
)

// The generator's per-delivery parse must stay far below the relay's
// per-delivery cost, or it measures itself. Compare with protocol's
// BenchmarkDecodeMessage (a full decode).
func BenchmarkScanHeadMessage(b *testing.B) {
	frame, _ := protocol.Encode(&protocol.Message{Seq: 123456, ID: "17.123456789",
		From: protocol.Member{ID: "01JD7Q8Z", Name: "alice", Avatar: "builtin:fox", Since: 1763700000000, State: "online"},
		Text: strings.Repeat("x", 80), TS: 1763700004000})
	var h frameHead
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if !scanHead(frame, &h) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkHistAdd(b *testing.B) {
	var h hist
	b.ReportAllocs()
	v := uint64(0)
	for b.Loop() {
		v = (v*1103515245 + 12345) & 0xfffff
		h.add(v)
	}
}
