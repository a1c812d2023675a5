package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// FrameError is a frame the receiver refuses. Code is one of the Err* codes and
// Message is meant for a person. ID names the refused msg, when known. Close is
// the close code the relay uses after sending the error (0: keep the connection).
type FrameError struct {
	Code    string
	Message string
	ID      string
	Close   int
}

func (e *FrameError) Error() string { return e.Code + ": " + e.Message }

// Frame builds the error frame that tells the peer about e.
func (e *FrameError) Frame() *Error {
	return &Error{Code: e.Code, Message: e.Message, ID: e.ID}
}

// Encode returns f as one JSON object, "type" first.
func Encode(f Frame) ([]byte, error) {
	// Calling MarshalJSON directly skips the compaction pass json.Marshal would
	// run over a Marshaler's output.
	return f.MarshalJSON()
}

// DecodeClient parses a client -> relay frame: *Hello, *Send, *Ping, *Bye
// or *HistoryRequest.
// Unknown fields are ignored. It checks structure and field types only; the
// relay validates contents (names, lengths) with the Validate functions.
func DecodeClient(data []byte) (Frame, error) {
	if f, ok := decodeSend(data); ok {
		return f, nil
	}
	return clientFrames.decode(data)
}

// DecodeRelay parses a relay -> client frame: *Welcome, *Message, *Ack, *Joined,
// *Presence, *Left, *Pong, *Error or *History. Unknown fields are ignored.
func DecodeRelay(data []byte) (Frame, error) { return relayFrames.decode(data) }

// The frames each direction carries. A field added to a frame type's struct
// is decoded with nothing else to change.
var (
	clientFrames = newFrameSet(&Hello{}, &Send{}, &Ping{}, &Bye{}, &HistoryRequest{})
	relayFrames  = newFrameSet(&Welcome{}, &Message{}, &Ack{}, &Joined{}, &Presence{}, &Left{}, &Pong{}, &Error{}, &History{})
)

// frameSet decodes the frames of one direction. Every Heartline encoder
// writes "type" first, so the type is read off the front of the frame and
// the frame is parsed once, straight into its own struct; anything else
// (type elsewhere, a field of the wrong type, not JSON) takes slowDecode,
// which parses again to find the type, or the error to report.
type frameSet map[string]reflect.Type

func newFrameSet(frames ...Frame) frameSet {
	s := frameSet{}
	for _, f := range frames {
		s[f.FrameType()] = reflect.TypeOf(f).Elem()
	}
	return s
}

// newFrame returns an empty frame of type name, or nil for an unknown type.
func (s frameSet) newFrame(name string) Frame {
	t, ok := s[name]
	if !ok {
		return nil
	}
	return reflect.New(t).Interface().(Frame)
}

func (s frameSet) decode(data []byte) (Frame, error) {
	if name, ok := leadingType(data); ok {
		if f := s.newFrame(name); f != nil && json.Unmarshal(data, f) == nil {
			return f, nil
		}
	}
	return slowDecode(data, s.newFrame)
}

// leadingType reads the type of a frame that starts {"type":"<name>", the
// way Encode writes every frame; ok is false for any other start.
func leadingType(data []byte) (name string, ok bool) {
	const prefix = `{"type":"`
	if len(data) < len(prefix) || string(data[:len(prefix)]) != prefix {
		return "", false
	}
	rest := data[len(prefix):]
	for i, b := range rest {
		switch {
		case b == '"':
			return string(rest[:i]), true
		case b == '\\' || b < 0x20:
			return "", false // escapes: leave it to the full parse
		}
	}
	return "", false
}

// slowDecode handles a frame the fast path did not: its type is not first,
// or decoding it into its type failed. It parses the frame for its type,
// then into that type, and otherwise picks the error: invalid JSON, no type,
// an unknown type, or a bad field (a hello's mistyped field gets its own
// code). A frame that names its type twice is read as the first on the fast
// path and the last here.
func slowDecode(data []byte, newFrame func(string) Frame) (Frame, error) {
	var head struct {
		Type *string `json:"type"`
		ID   any     `json:"id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		if !json.Valid(data) {
			return nil, badFrame("the frame is not valid JSON", "")
		}
		return nil, badFrame(`a frame must be a JSON object with a string "type"`, "")
	}
	if head.Type == nil {
		return nil, badFrame(`the frame has no "type"`, "")
	}
	f := newFrame(*head.Type)
	if f == nil {
		return nil, unknownType(*head.Type)
	}
	err := json.Unmarshal(data, f)
	if err == nil {
		return f, nil
	}
	id, _ := head.ID.(string)
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		if *head.Type == TypeHello {
			return nil, helloFieldType(typeErr.Field, typeErr.Value)
		}
		return nil, badFrame(fmt.Sprintf("field %q of a %q frame has the wrong type (%s)", typeErr.Field, *head.Type, typeErr.Value), id)
	}
	return nil, badFrame(fmt.Sprintf("the %q frame is malformed: %v", *head.Type, err), id)
}

// helloFieldType refuses a hello whose field has the wrong JSON type as
// Validate refuses a wrong value in it: with the field's own code and the
// hello's close code, so that the client learns what to fix instead of
// waiting for a welcome that never comes. found is what encoding/json
// found there ("string", "number 1.5", ...).
func helloFieldType(field, found string) *FrameError {
	got := "a " + found
	if n, ok := strings.CutPrefix(found, "number "); ok {
		got = n // a number, but not one that fits (1.5, 1e400)
	} else if found == "array" || found == "object" {
		got = "an " + found
	}
	switch field {
	case "v":
		return &FrameError{Code: ErrBadFrame, Close: CloseUnsupportedVersion,
			Message: fmt.Sprintf(`the protocol version "v" must be the number %d, not %s`, Version, got)}
	case "room":
		return helloRefused(ErrBadRoom, "the room name must be a string, not "+got)
	case "name":
		return helloRefused(ErrBadName, "the name must be a string, not "+got)
	case "key":
		return helloRefused(ErrBadKey, "the member key must be a string, not "+got)
	case "avatar":
		return helloRefused(ErrBadAvatar, `the avatar must be a string ("", "builtin:<name>" or "sha256:<hex>"), not `+got)
	}
	return helloRefused(ErrBadFrame, fmt.Sprintf("field %q of a hello has the wrong type (%s)", field, found))
}

func badFrame(msg, id string) *FrameError {
	return &FrameError{Code: ErrBadFrame, Message: msg, ID: id}
}

func unknownType(t string) *FrameError {
	const maxShown = 32 // a hostile type string is not echoed back whole
	if len(t) > maxShown {
		t = t[:maxShown] + "..."
	}
	return &FrameError{Code: ErrUnknownType, Message: fmt.Sprintf("unknown frame type %q", t)}
}
