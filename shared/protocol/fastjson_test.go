package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The hand-written encoders must write what encoding/json writes.
func reflectEncode(f Frame) []byte {
	var b []byte
	var err error
	switch f := f.(type) {
	case *Message:
		type alias Message
		b, err = withType(TypeMsg, alias(*f))
	case *Ack:
		type alias Ack
		b, err = withType(TypeAck, alias(*f))
	}
	if err != nil {
		panic(err)
	}
	return b
}

var awkwardStrings = []string{"", "plain", `q"uote\back`, "<b>&amp;</b>", "line\nbreak\ttab\r\b\f\x00\x1f\x7f",
	"é ünïcödé 日本 🙂", "\u2028\u2029", "\u202eevil", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate"}

func TestFastEncodersMatchEncodingJSON(t *testing.T) {
	for _, s := range awkwardStrings {
		checkEncoders(t, s, s, 1<<63+5, -1)
	}
}

func FuzzFastEncoders(f *testing.F) {
	for _, s := range awkwardStrings {
		f.Add(s, "n", uint64(7), int64(1700000000000))
	}
	f.Fuzz(checkEncoders)
}

func checkEncoders(t *testing.T, text, name string, seq uint64, ts int64) {
	frames := []Frame{
		&Message{Seq: seq, ID: name + "-id", From: Member{ID: text, Name: name, Avatar: "builtin:" + text, Since: ts - 1, State: StateOnline}, Text: text, TS: ts},
		&Ack{ID: text, Seq: seq, TS: ts},
	}
	for _, fr := range frames {
		got, err := Encode(fr)
		if want := reflectEncode(fr); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%T:\n got %s (%v)\nwant %s", fr, got, err, want)
		}
	}
}

func TestDecodeSendFastPathMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"type":"msg","id":"1","text":"hi"}`,
		`{"type":"msg","text":"hi","id":"1"}`,
		`{"type":"msg","id":"1","text":"é 🙂"}`,
		`{"type":"msg","id":"1","text":"a\nb"}`,
		`{"type":"msg","id":"1","text":"bad \xff"}`,
		`{"type":"msg","ID":"1","text":"x"}`,
		`{"type":"msg","id":"1","id":"2","text":"x"}`,
		`{"type":"msg","id":"1","text":"x","extra":5}`,
		`{"type":"msg","id":1,"text":"x"}`,
		`{"type":"msg","id":"1","text":"x"} `,
		`{"type":"msg","id":"1","text":"x"`,
		`{"type":"msg"}`,
		`{"type":"msg","type":"ping"}`,
	} {
		checkDecodeSend(t, []byte(in))
	}
}

func FuzzDecodeSend(f *testing.F) {
	f.Add([]byte(`{"type":"msg","id":"1","text":"hi"}`))
	f.Add([]byte(`{"type":"msg","text":"é","id":"x"}`))
	f.Fuzz(checkDecodeSend)
}

// checkDecodeSend: where the fast path answers, encoding/json reads the
// same frame and the same fields.
func checkDecodeSend(t *testing.T, data []byte) {
	fast, ok := decodeSend(data)
	if !ok {
		return
	}
	if name, ok := leadingType(data); !ok || name != TypeMsg {
		t.Fatalf("%q: fast path took a frame whose type is not msg", data)
	}
	var slow Send
	if err := json.Unmarshal(data, &slow); err != nil || slow != *fast {
		t.Fatalf("%q: fast %+v, encoding/json %+v (%v)", data, *fast, slow, err)
	}
	f, err := DecodeClient(data)
	if got, isSend := f.(*Send); err != nil || !isSend || *got != slow {
		t.Fatalf("%q: DecodeClient %#v, %v", data, f, err)
	}
}
