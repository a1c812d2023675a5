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

// DecodeClient parses a client -> relay frame: *Hello, *Send, *Ping or *Bye.
// Unknown fields are ignored. It checks structure and field types only; the
// relay validates contents (names, lengths) with the Validate functions.
func DecodeClient(data []byte) (Frame, error) { return clientFrames.decode(data) }

// DecodeRelay parses a relay -> client frame: *Welcome, *Message, *Ack, *Joined,
// *Presence, *Left, *Pong or *Error. Unknown fields are ignored.
func DecodeRelay(data []byte) (Frame, error) { return relayFrames.decode(data) }

// The frames each direction carries. A field added to a frame type's struct
// is decoded with nothing else to change.
var (
	clientFrames = newEnvelope(&Hello{}, &Send{}, &Ping{}, &Bye{})
	relayFrames  = newEnvelope(&Welcome{}, &Message{}, &Ack{}, &Joined{}, &Presence{}, &Left{}, &Pong{}, &Error{})
)

// envelope parses a frame of one direction in one JSON pass, whatever its
// type: it decodes into a struct made at start-up from the union of the
// frame types' fields (by JSON name), then copies the fields of the type the
// frame names into a value of that type.
type envelope struct {
	union reflect.Type            // field 0 is the frame's "type" (*string)
	types map[string]reflect.Type // frame type name -> struct type
	from  map[string][]fieldCopy  // frame type name -> its fields in union
}

type fieldCopy struct{ frame, union int }

func newEnvelope(frames ...Frame) *envelope {
	e := &envelope{types: map[string]reflect.Type{}, from: map[string][]fieldCopy{}}
	fields := []reflect.StructField{{Name: "Type", Type: reflect.TypeFor[*string](), Tag: `json:"type"`}}
	byName := map[string]int{}
	for _, f := range frames {
		t := reflect.TypeOf(f).Elem()
		e.types[f.FrameType()] = t
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if !sf.IsExported() || name == "-" || name == "" {
				continue
			}
			j, ok := byName[name]
			if !ok {
				j = len(fields)
				byName[name] = j
				fields = append(fields, reflect.StructField{Name: fmt.Sprintf("F%d", j), Type: sf.Type, Tag: reflect.StructTag(`json:"` + name + `"`)})
			} else if fields[j].Type != sf.Type {
				// One JSON name, two Go types: a frame would decode wrongly.
				panic(fmt.Sprintf("protocol: field %q is %v in %T but %v in another frame", name, sf.Type, f, fields[j].Type))
			}
			e.from[f.FrameType()] = append(e.from[f.FrameType()], fieldCopy{frame: i, union: j})
		}
	}
	e.union = reflect.StructOf(fields)
	return e
}

// newFrame returns an empty frame of type name, or nil for an unknown type.
func (e *envelope) newFrame(name string) Frame {
	t, ok := e.types[name]
	if !ok {
		return nil
	}
	return reflect.New(t).Interface().(Frame)
}

func (e *envelope) decode(data []byte) (Frame, error) {
	u := reflect.New(e.union)
	if err := json.Unmarshal(data, u.Interface()); err != nil {
		return slowDecode(data, err, e.newFrame)
	}
	typ := u.Elem().Field(0).Interface().(*string)
	if typ == nil {
		return nil, badFrame(`the frame has no "type"`, "")
	}
	f := e.newFrame(*typ)
	if f == nil {
		return nil, unknownType(*typ)
	}
	v := reflect.ValueOf(f).Elem()
	for _, c := range e.from[*typ] {
		v.Field(c.frame).Set(u.Elem().Field(c.union))
	}
	return f, nil
}

// slowDecode handles a frame the one-pass envelope parse refused. The envelope
// merges the fields of every frame type, so a field that is unknown to this
// frame's type (and so must be ignored) can clash with another type's field of
// the same name; decoding into the frame's own type settles it. Otherwise it
// picks the error: invalid JSON, no type, an unknown type, or a bad field.
func slowDecode(data []byte, parseErr error, newFrame func(string) Frame) (Frame, error) {
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
	return nil, badFrame(fmt.Sprintf("the %q frame is malformed: %v", *head.Type, parseErr), id)
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
