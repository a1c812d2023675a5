package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var alice = Member{ID: "m_01h2x", Name: "Alice", Avatar: "builtin:fox", Since: 1763700000000, State: StateOnline}
var bob = Member{ID: "m_01h2y", Name: "Bob", Avatar: "", Since: 1763700005000, State: StateAway}

// goldenClient and goldenRelay are one example of every frame, as the wire
// shows them in testdata/golden/<name>.json (docs/PROTOCOL.md quotes them).
var goldenClient = map[string]Frame{
	"hello":        &Hello{V: 1, Room: "lobby", Name: "Alice", Key: "k3y-0f-al1ce-2c9f1e", Avatar: "builtin:fox", Client: "heartline-desktop/0.1.0"},
	"hello-resume": &Hello{V: 1, Room: "lobby", Name: "Alice", Key: "k3y-0f-al1ce-2c9f1e", Token: "s3cret", Resume: &Resume{Epoch: "e7c1a9", LastSeq: 41}},
	"send":         &Send{ID: "c-1", Text: "hi all"},
	"ping":         &Ping{T: 1763700001234},
	"bye":          &Bye{},
}

var goldenRelay = map[string]Frame{
	"welcome": &Welcome{V: 1, Epoch: "e7c1a9", Room: "lobby", You: alice, Members: []Member{alice, bob},
		History:   []Message{{Seq: 42, ID: "c-9", From: bob, Text: "welcome back", TS: 1763700002000}},
		Recovered: true, Seq: 42, ServerTime: 1763700003000,
		Heartbeat: Heartbeat{IntervalMS: 10000, TimeoutMS: 25000}, ObservedAddr: "203.0.113.7:51234", STUN: []int{3478, 3479}},
	"welcome-empty": &Welcome{V: 1, Epoch: "e7c1a9", Room: "new-room", You: alice, Members: []Member{alice},
		Heartbeat: Heartbeat{IntervalMS: 10000, TimeoutMS: 25000}, ObservedAddr: "127.0.0.1:40000"},
	"message":     &Message{Seq: 43, ID: "c-1", From: alice, Text: "hi all", TS: 1763700004000},
	"ack":         &Ack{ID: "c-1", Seq: 43, TS: 1763700004000},
	"joined":      &Joined{Member: bob},
	"presence":    &Presence{Member: bob},
	"left":        &Left{Member: bob, Reason: ReasonTimeout},
	"pong":        &Pong{T: 1763700001234, ServerTime: 1763700001240},
	"error":       &Error{Code: ErrTooLong, Message: "the message has 4001 characters; at most 4000 are allowed", ID: "c-2"},
	"error-rate":  &Error{Code: ErrRateLimited, Message: "slow down: 5 messages a second at most", ID: "c-3", RetryAfterMS: 180},
	"error-plain": &Error{Code: ErrUnknownType, Message: `unknown frame type "typing"`},
}

func goldenPath(name string) string { return filepath.Join("testdata", "golden", name+".json") }

func checkGolden(t *testing.T, name string, f Frame, decode func([]byte) (Frame, error)) {
	t.Helper()
	got, err := Encode(f)
	if err != nil {
		t.Fatalf("Encode(%s): %v", name, err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, got, "", "  "); err != nil {
		t.Fatalf("Encode(%s) is not JSON: %v\n%s", name, err, got)
	}
	indented.WriteByte('\n')
	path := goldenPath(name)
	if *update {
		if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if !bytes.Equal(indented.Bytes(), want) {
		t.Errorf("Encode(%s) differs from %s:\n got: %s\nwant: %s", name, path, indented.Bytes(), want)
	}
	if !bytes.HasPrefix(got, []byte(`{"type":"`+f.FrameType()+`"`)) {
		t.Errorf("Encode(%s) does not start with its type: %s", name, got)
	}
	back, err := decode(want)
	if err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	if !reflect.DeepEqual(normalize(back), normalize(f)) {
		t.Errorf("decoding %s:\n got %#v\nwant %#v", path, back, f)
	}
}

// normalize makes nil and empty lists compare equal: the wire has no nil.
func normalize(f Frame) Frame {
	if w, ok := f.(*Welcome); ok {
		c := *w
		if len(c.Members) == 0 {
			c.Members = nil
		}
		if len(c.History) == 0 {
			c.History = nil
		}
		if len(c.STUN) == 0 {
			c.STUN = nil
		}
		return &c
	}
	return f
}

func TestGoldenClientFrames(t *testing.T) {
	for name, f := range goldenClient {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, f, DecodeClient) })
	}
}

func TestGoldenRelayFrames(t *testing.T) {
	for name, f := range goldenRelay {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, f, DecodeRelay) })
	}
}

func TestWelcomeListsAreNeverNull(t *testing.T) {
	b, err := Encode(&Welcome{V: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"members":[]`, `"history":[]`, `"stun":[]`} {
		if !bytes.Contains(b, []byte(field)) {
			t.Errorf("welcome %s lacks %s", b, field)
		}
	}
}

func TestDecodeClientErrors(t *testing.T) {
	cases := []struct {
		name, in, code, msgHas, id string
	}{
		{"not json", `{"type":"msg",`, ErrBadFrame, "not valid JSON", ""},
		{"plain text", `hello there`, ErrBadFrame, "not valid JSON", ""},
		{"array", `[1,2,3]`, ErrBadFrame, "JSON object", ""},
		{"no type", `{"id":"x","text":"hi"}`, ErrBadFrame, `no "type"`, ""},
		{"null", `null`, ErrBadFrame, `no "type"`, ""},
		{"numeric type", `{"type":7}`, ErrBadFrame, "JSON object", ""},
		{"unknown type", `{"type":"typing"}`, ErrUnknownType, `"typing"`, ""},
		{"relay type from a client", `{"type":"welcome"}`, ErrUnknownType, `"welcome"`, ""},
		{"unknown type with clashing field", `{"type":"react","text":{"emoji":"+1"}}`, ErrUnknownType, `"react"`, ""},
		{"text not a string", `{"type":"msg","id":"c-7","text":42}`, ErrBadFrame, `"text"`, "c-7"},
		{"ping t not a number", `{"type":"ping","t":"soon"}`, ErrBadFrame, `"t"`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := DecodeClient([]byte(c.in))
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeClient(%s) = %v, %v; want a FrameError", c.in, f, err)
			}
			if fe.Code != c.code || !strings.Contains(fe.Message, c.msgHas) || fe.ID != c.id || fe.Close != 0 {
				t.Errorf("DecodeClient(%s) = %+v; want code %s, message with %q, id %q, close 0", c.in, fe, c.code, c.msgHas, c.id)
			}
		})
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	// A field that belongs to another frame type, with a clashing JSON type, is
	// still just an unknown field for this one.
	f, err := DecodeClient([]byte(`{"type":"hello","v":1,"room":"a","text":5,"future":{"x":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if h := f.(*Hello); h.Room != "a" || h.V != 1 {
		t.Errorf("got %+v", h)
	}
	f, err = DecodeRelay([]byte(`{"type":"pong","t":5,"server_time":6,"member":"not a member","new":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := f.(*Pong); p.T != 5 || p.ServerTime != 6 {
		t.Errorf("got %+v", p)
	}
}

func TestUnknownTypeIsNotEchoedWhole(t *testing.T) {
	long := strings.Repeat("x", 5000)
	_, err := DecodeClient([]byte(`{"type":"` + long + `"}`))
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Code != ErrUnknownType || len(fe.Message) > 100 {
		t.Fatalf("got %v", err)
	}
}

func TestFrameErrorFrame(t *testing.T) {
	fe := &FrameError{Code: ErrTooLong, Message: "too long", ID: "c-1", Close: 0}
	b, err := Encode(fe.Frame())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"type":"error","code":"too_long","message":"too long","id":"c-1"}` {
		t.Errorf("got %s", b)
	}
}

// A hello field of the wrong JSON type is refused as a wrong value there
// would be: with the field's own code and the hello's close code (a generic
// bad_frame would leave the client waiting for a welcome).
func TestDecodeHelloFieldOfWrongType(t *testing.T) {
	const rest = `"room":"lobby","name":"Ana","key":"k3y-0f-an4-0123456"`
	cases := []struct {
		name, in, code, msgHas string
		close                  int
	}{
		{"v string", `{"type":"hello","v":"1",` + rest + `}`, ErrBadFrame, `"v" must be the number 1, not a string`, CloseUnsupportedVersion},
		{"v fraction", `{"type":"hello","v":1.5,` + rest + `}`, ErrBadFrame, "not 1.5", CloseUnsupportedVersion},
		{"v huge", `{"type":"hello","v":1e400,` + rest + `}`, ErrBadFrame, "not 1e400", CloseUnsupportedVersion},
		{"room array", `{"type":"hello","v":1,"room":[],"name":"Ana","key":"k3y-0f-an4-0123456"}`, ErrBadRoom, "room name must be a string, not an array", CloseHelloRefused},
		{"name number", `{"type":"hello","v":1,"room":"lobby","name":5,"key":"k3y-0f-an4-0123456"}`, ErrBadName, "name must be a string, not a number", CloseHelloRefused},
		{"name in other case", `{"type":"hello","v":1,"room":"lobby","NAME":5,"key":"k3y-0f-an4-0123456"}`, ErrBadName, "name must be a string", CloseHelloRefused},
		{"key object", `{"type":"hello","v":1,"room":"lobby","name":"Ana","key":{}}`, ErrBadKey, "key must be a string, not an object", CloseHelloRefused},
		{"avatar bool", `{"type":"hello","v":1,` + rest + `,"avatar":true}`, ErrBadAvatar, "avatar must be a string", CloseHelloRefused},
		{"token number", `{"type":"hello","v":1,` + rest + `,"token":7}`, ErrBadFrame, `field "token" of a hello`, CloseHelloRefused},
		{"client array", `{"type":"hello","v":1,` + rest + `,"client":["x"]}`, ErrBadFrame, `field "client" of a hello`, CloseHelloRefused},
		{"resume string", `{"type":"hello","v":1,"resume":"yes"}`, ErrBadFrame, `field "resume" of a hello`, CloseHelloRefused},
		{"resume epoch number", `{"type":"hello","v":1,` + rest + `,"resume":{"epoch":5,"last_seq":1}}`, ErrBadFrame, `"resume.epoch"`, CloseHelloRefused},
		{"resume last_seq negative", `{"type":"hello","v":1,` + rest + `,"resume":{"epoch":"e","last_seq":-1}}`, ErrBadFrame, `"resume.last_seq"`, CloseHelloRefused},
		// The first field of the wrong type decides.
		{"two wrong", `{"type":"hello","v":1,"room":"lobby","key":5,"name":5}`, ErrBadKey, "key", CloseHelloRefused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := DecodeClient([]byte(c.in))
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeClient(%s) = %v, %v; want a FrameError", c.in, f, err)
			}
			if fe.Code != c.code || !strings.Contains(fe.Message, c.msgHas) || fe.Close != c.close {
				t.Errorf("DecodeClient(%s) = %+v; want code %s, message with %q, close %d", c.in, fe, c.code, c.msgHas, c.close)
			}
		})
	}
	// Other frames keep bad_frame and their connection.
	_, err := DecodeClient([]byte(`{"type":"msg","id":"c-1","text":5,"name":5}`))
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Code != ErrBadFrame || fe.Close != 0 {
		t.Errorf("msg with a numeric text: %v", err)
	}
}

// Frames that do not start with their type (other encoders may order the
// keys differently, or escape the name) decode the same, through the full
// parse.
func TestDecodeTypeAnywhere(t *testing.T) {
	for _, in := range []string{
		`{"id":"c-1","type":"msg","text":"hi all"}`,
		` {"type":"msg","id":"c-1","text":"hi all"}`,
		`{"type":"m\u0073g","id":"c-1","text":"hi all"}`,
	} {
		f, err := DecodeClient([]byte(in))
		if err != nil || !reflect.DeepEqual(f, &Send{ID: "c-1", Text: "hi all"}) {
			t.Errorf("DecodeClient(%s) = %#v, %v", in, f, err)
		}
	}
}
