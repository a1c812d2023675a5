package protocol

import "encoding/json"

// Frame is one JSON object on the wire. Every frame type writes its own "type"
// field when marshalled, first, so Encode needs no reflection on the caller's side.
type Frame interface {
	FrameType() string
	json.Marshaler
}

// Member is a room member as every client sees it. ID is assigned by the relay
// and never reused; the member's key never leaves the relay.
type Member struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Avatar string `json:"avatar"`
	Since  int64  `json:"since"` // unix ms of the member's first join
	State  string `json:"state"` // StateOnline or StateAway
}

// Hello must be a connection's first frame.
type Hello struct {
	V      int     `json:"v"`
	Room   string  `json:"room"`
	Name   string  `json:"name"`
	Key    string  `json:"key"`
	Avatar string  `json:"avatar,omitempty"`
	Token  string  `json:"token,omitempty"`
	Client string  `json:"client,omitempty"`
	Resume *Resume `json:"resume,omitempty"`
}

// Resume asks for every message after LastSeq, if the room's epoch is still Epoch.
type Resume struct {
	Epoch   string `json:"epoch"`
	LastSeq uint64 `json:"last_seq"`
}

// Send is the client's "msg": a message to post to the room.
type Send struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Ping is the client's heartbeat; T is the client's clock in unix ms.
// HistoryRequest asks for up to Limit of the room's messages with seq
// below Before (0: the newest), for a client that is missing them: one
// that scrolled back past what it holds. An addition to v1: send it only
// to a relay whose welcome lists FeatureHistory.
type HistoryRequest struct {
	ID     string `json:"id"`     // the request's id, 1-64 characters: the answer carries it
	Before uint64 `json:"before"` // messages with seq < Before; 0: the newest
	Limit  int    `json:"limit"`  // 1..HistoryMaxLimit; 0: the relay's page size
}

// History answers a HistoryRequest: the newest Limit messages the relay
// still holds below Before, oldest first, with no hole between them and
// Before. More is false when the relay holds nothing older than the first
// of them. A request the relay refuses gets an error with its id instead.
type History struct {
	ID       string    `json:"id"`
	Epoch    string    `json:"epoch"`
	Messages []Message `json:"messages"`
	More     bool      `json:"more"`
}

type Ping struct {
	T int64 `json:"t"`
}

// Bye leaves the room at once, without a grace period.
type Bye struct{}

// Welcome answers a successful hello.
type Welcome struct {
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
	// Features lists the additions to v1 this relay serves (FeatureHistory).
	Features []string `json:"features,omitempty"`
}

// Heartbeat tells the client how often to ping and when the link counts as dead.
type Heartbeat struct {
	IntervalMS int64 `json:"interval_ms"`
	TimeoutMS  int64 `json:"timeout_ms"`
}

// Message is the relay's "msg": a message it accepted, stamped with its seq,
// sender and time.
type Message struct {
	Seq  uint64 `json:"seq"`
	ID   string `json:"id"`
	From Member `json:"from"`
	Text string `json:"text"`
	TS   int64  `json:"ts"`
}

// Ack tells a sender its message was accepted (or was already accepted before).
type Ack struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"`
	TS  int64  `json:"ts"`
}

// Joined announces a new member.
type Joined struct {
	Member Member `json:"member"`
}

// Presence announces a member's changed state, name or avatar.
type Presence struct {
	Member Member `json:"member"`
}

// Left announces that a member left for good.
type Left struct {
	Member Member `json:"member"`
	Reason string `json:"reason"`
}

// Pong answers a ping, echoing its T.
type Pong struct {
	T          int64 `json:"t"`
	ServerTime int64 `json:"server_time"`
}

// Error refuses a request; Message is meant for a person.
type Error struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	ID           string `json:"id,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func (*Hello) FrameType() string          { return TypeHello }
func (*Send) FrameType() string           { return TypeMsg }
func (*Ping) FrameType() string           { return TypePing }
func (*Bye) FrameType() string            { return TypeBye }
func (*HistoryRequest) FrameType() string { return TypeHistory }
func (*History) FrameType() string        { return TypeHistory }
func (*Welcome) FrameType() string        { return TypeWelcome }
func (*Message) FrameType() string        { return TypeMsg }
func (*Ack) FrameType() string            { return TypeAck }
func (*Joined) FrameType() string         { return TypeJoined }
func (*Presence) FrameType() string       { return TypePresence }
func (*Left) FrameType() string           { return TypeLeft }
func (*Pong) FrameType() string           { return TypePong }
func (*Error) FrameType() string          { return TypeError }

// Each MarshalJSON marshals an alias type (which has no methods, so no recursion)
// and splices "type" in front.

func (f *Hello) MarshalJSON() ([]byte, error) {
	type alias Hello
	return withType(TypeHello, alias(*f))
}

func (f *Send) MarshalJSON() ([]byte, error) {
	type alias Send
	return withType(TypeMsg, alias(*f))
}

func (f *Ping) MarshalJSON() ([]byte, error) {
	type alias Ping
	return withType(TypePing, alias(*f))
}

func (f *Joined) MarshalJSON() ([]byte, error) {
	type alias Joined
	return withType(TypeJoined, alias(*f))
}

func (f *Presence) MarshalJSON() ([]byte, error) {
	type alias Presence
	return withType(TypePresence, alias(*f))
}

func (f *Left) MarshalJSON() ([]byte, error) {
	type alias Left
	return withType(TypeLeft, alias(*f))
}

func (f *HistoryRequest) MarshalJSON() ([]byte, error) {
	type alias HistoryRequest
	return withType(TypeHistory, alias(*f))
}

func (f *History) MarshalJSON() ([]byte, error) {
	type alias History
	h := alias(*f)
	if h.Messages == nil {
		h.Messages = []Message{}
	}
	return withType(TypeHistory, h)
}

func (f *Pong) MarshalJSON() ([]byte, error) {
	type alias Pong
	return withType(TypePong, alias(*f))
}

func (f *Error) MarshalJSON() ([]byte, error) {
	type alias Error
	return withType(TypeError, alias(*f))
}

func (*Bye) MarshalJSON() ([]byte, error) {
	return []byte(`{"type":"bye"}`), nil
}

func (f *Welcome) MarshalJSON() ([]byte, error) {
	type alias Welcome
	w := alias(*f)
	// Lists are always arrays on the wire, never null, so clients need no nil case.
	if w.Members == nil {
		w.Members = []Member{}
	}
	if w.History == nil {
		w.History = []Message{}
	}
	if w.STUN == nil {
		w.STUN = []int{}
	}
	return withType(TypeWelcome, w)
}

// withType marshals body, a struct, and returns it with "type" as its first field.
func withType(typ string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(typ)+12)
	out = append(out, `{"type":"`...)
	out = append(out, typ...)
	out = append(out, '"')
	if len(b) > 2 { // not "{}"
		out = append(out, ',')
	}
	return append(out, b[1:]...), nil
}
