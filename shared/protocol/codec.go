package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
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

// clientEnvelope holds the union of the client -> relay frames' fields so that a
// frame is parsed in one pass. Type is a pointer to tell "missing" from "".
type clientEnvelope struct {
	Type   *string `json:"type"`
	V      int     `json:"v"`
	Room   string  `json:"room"`
	Name   string  `json:"name"`
	Key    string  `json:"key"`
	Avatar string  `json:"avatar"`
	Token  string  `json:"token"`
	Client string  `json:"client"`
	Resume *Resume `json:"resume"`
	ID     string  `json:"id"`
	Text   string  `json:"text"`
	T      int64   `json:"t"`
}

// DecodeClient parses a client -> relay frame: *Hello, *Send, *Ping or *Bye.
// Unknown fields are ignored. It checks structure and field types only; the
// relay validates contents (names, lengths) with the Validate functions.
func DecodeClient(data []byte) (Frame, error) {
	var env clientEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return slowDecode(data, err, newClientFrame)
	}
	if env.Type == nil {
		return nil, badFrame(`the frame has no "type"`, "")
	}
	switch *env.Type {
	case TypeHello:
		return &Hello{V: env.V, Room: env.Room, Name: env.Name, Key: env.Key, Avatar: env.Avatar,
			Token: env.Token, Client: env.Client, Resume: env.Resume}, nil
	case TypeMsg:
		return &Send{ID: env.ID, Text: env.Text}, nil
	case TypePing:
		return &Ping{T: env.T}, nil
	case TypeBye:
		return &Bye{}, nil
	}
	return nil, unknownType(*env.Type)
}

// relayEnvelope is clientEnvelope's counterpart for relay -> client frames.
type relayEnvelope struct {
	Type         *string   `json:"type"`
	V            int       `json:"v"`
	Epoch        string    `json:"epoch"`
	Room         string    `json:"room"`
	You          Member    `json:"you"`
	Members      []Member  `json:"members"`
	History      []Message `json:"history"`
	Recovered    bool      `json:"recovered"`
	Seq          uint64    `json:"seq"`
	ServerTime   int64     `json:"server_time"`
	Heartbeat    Heartbeat `json:"heartbeat"`
	ObservedAddr string    `json:"observed_addr"`
	STUN         []int     `json:"stun"`
	ID           string    `json:"id"`
	From         Member    `json:"from"`
	Text         string    `json:"text"`
	TS           int64     `json:"ts"`
	Member       Member    `json:"member"`
	Reason       string    `json:"reason"`
	T            int64     `json:"t"`
	Code         string    `json:"code"`
	Message      string    `json:"message"`
	RetryAfterMS int64     `json:"retry_after_ms"`
}

// DecodeRelay parses a relay -> client frame: *Welcome, *Message, *Ack, *Joined,
// *Presence, *Left, *Pong or *Error. Unknown fields are ignored.
func DecodeRelay(data []byte) (Frame, error) {
	var env relayEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return slowDecode(data, err, newRelayFrame)
	}
	if env.Type == nil {
		return nil, badFrame(`the frame has no "type"`, "")
	}
	switch *env.Type {
	case TypeWelcome:
		return &Welcome{V: env.V, Epoch: env.Epoch, Room: env.Room, You: env.You, Members: env.Members,
			History: env.History, Recovered: env.Recovered, Seq: env.Seq, ServerTime: env.ServerTime,
			Heartbeat: env.Heartbeat, ObservedAddr: env.ObservedAddr, STUN: env.STUN}, nil
	case TypeMsg:
		return &Message{Seq: env.Seq, ID: env.ID, From: env.From, Text: env.Text, TS: env.TS}, nil
	case TypeAck:
		return &Ack{ID: env.ID, Seq: env.Seq, TS: env.TS}, nil
	case TypeJoined:
		return &Joined{Member: env.Member}, nil
	case TypePresence:
		return &Presence{Member: env.Member}, nil
	case TypeLeft:
		return &Left{Member: env.Member, Reason: env.Reason}, nil
	case TypePong:
		return &Pong{T: env.T, ServerTime: env.ServerTime}, nil
	case TypeError:
		return &Error{Code: env.Code, Message: env.Message, ID: env.ID, RetryAfterMS: env.RetryAfterMS}, nil
	}
	return nil, unknownType(*env.Type)
}

func newClientFrame(t string) Frame {
	switch t {
	case TypeHello:
		return &Hello{}
	case TypeMsg:
		return &Send{}
	case TypePing:
		return &Ping{}
	case TypeBye:
		return &Bye{}
	}
	return nil
}

func newRelayFrame(t string) Frame {
	switch t {
	case TypeWelcome:
		return &Welcome{}
	case TypeMsg:
		return &Message{}
	case TypeAck:
		return &Ack{}
	case TypeJoined:
		return &Joined{}
	case TypePresence:
		return &Presence{}
	case TypeLeft:
		return &Left{}
	case TypePong:
		return &Pong{}
	case TypeError:
		return &Error{}
	}
	return nil
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
