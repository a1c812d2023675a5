package store

import (
	"errors"
	"testing"
)

func TestRecordEncodingRoundTripAndDamage(t *testing.T) {
	recs := []Record{
		{Seq: 1},
		{Seq: 7, TS: -5, MemberID: "m", ClientID: "c", Text: "t"},
		{Seq: 1 << 40, TS: 1700000000000, MemberID: "m-1", ClientID: "\x00id", Text: "日本語 ✓\x00", Name: "Ñame", Avatar: "sha256:ab"},
	}
	for _, want := range recs {
		b := encodeRecord(nil, &want)
		got, err := decodeRecord(want.Seq, b)
		if err != nil || got != want {
			t.Fatalf("round trip of %+v = %+v, %v", want, got, err)
		}
		if m, c, ok := recordIDs(b); !ok || string(m) != want.MemberID || string(c) != want.ClientID {
			t.Errorf("recordIDs(%+v) = %q %q %v", want, m, c, ok)
		}
		if ts, ok := recordTS(b); !ok || ts != want.TS {
			t.Errorf("recordTS(%+v) = %d %v", want, ts, ok)
		}
		for i := range b {
			damaged := append([]byte(nil), b...)
			damaged[i] ^= 0x20
			if _, err := decodeRecord(want.Seq, damaged); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%+v with byte %d flipped decoded without error", want, i)
			}
		}
		if _, err := decodeRecord(want.Seq, b[:len(b)-1]); err == nil && want.Text != "" {
			t.Errorf("%+v truncated decoded without error", want)
		}
	}
}

// FuzzDecodeRecord: whatever bytes a damaged file holds, decoding reports an
// error or a record, and never panics.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, &Record{TS: 1, MemberID: "m", ClientID: "c", Text: "hello"}))
	f.Add([]byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(1, b)
		if err == nil {
			if again, err := decodeRecord(1, encodeRecord(nil, &r)); err != nil || again != r {
				t.Fatalf("re-encoding %+v gave %+v, %v", r, again, err)
			}
		}
		recordIDs(b)
		recordTS(b)
	})
}
