package redisengine

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Outgoing is a message a member sent, to be published.
type Outgoing struct {
	MemberID, ClientID, Name, Avatar, Text string
}

// Published is what became of an Outgoing.
type Published struct {
	Seq       uint64
	TS        int64  // Redis's clock, ms, never earlier than the room's previous message
	Epoch     string // the room's epoch when it was published
	Duplicate bool   // the same (member, client id) was published before: Seq and TS are the original's
	Err       error
}

// Publish publishes msgs to room in order, in one round trip. A room
// unknown to Redis is created with epoch newEpoch.
func (e *Engine) Publish(ctx context.Context, room, newEpoch string, msgs []Outgoing) []Published {
	k := keysOf(room)
	keys := []string{k.meta, k.log, k.ids}
	maxlen := strconv.Itoa(e.history)
	execs := make([]rueidis.LuaExec, len(msgs))
	for i, m := range msgs {
		execs[i] = rueidis.LuaExec{Keys: keys, Args: []string{newEpoch, m.MemberID, m.ClientID, m.Name, m.Avatar, m.Text, maxlen, k.channel}}
	}
	start := time.Now()
	res := publishScript.ExecMulti(ctx, e.client, execs...)
	out := make([]Published, len(msgs))
	var firstErr error
	for i, r := range res {
		out[i] = parsePublished(r)
		if out[i].Err != nil && firstErr == nil {
			firstErr = out[i].Err
		}
	}
	e.observe("publish", start, firstErr)
	return out
}

func parsePublished(r rueidis.RedisResult) Published {
	arr, err := r.ToArray()
	if err != nil {
		return Published{Err: err}
	}
	if len(arr) != 4 {
		return Published{Err: errShortReply}
	}
	dup, _ := arr[0].AsInt64()
	seq, _ := arr[1].AsInt64()
	ts, _ := arr[2].AsInt64()
	epoch, _ := arr[3].ToString()
	return Published{Seq: uint64(seq), TS: ts, Epoch: epoch, Duplicate: dup == 1}
}

// Record is one message of a room's history.
type Record struct {
	Seq                                    uint64
	TS                                     int64
	MemberID, ClientID, Name, Avatar, Text string
}

func recordOf(x rueidis.XRangeEntry) (Record, error) {
	seqPart, _, _ := strings.Cut(x.ID, "-")
	seq, err := strconv.ParseUint(seqPart, 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("redis: bad stream entry id %q", x.ID)
	}
	f := x.FieldValues
	ts, _ := strconv.ParseInt(f["t"], 10, 64)
	return Record{Seq: seq, TS: ts, MemberID: f["m"], ClientID: f["c"], Name: f["n"], Avatar: f["a"], Text: f["x"]}, nil
}

// After returns up to limit messages with seq > after, oldest first.
func (e *Engine) After(ctx context.Context, room string, after uint64, limit int) ([]Record, error) {
	cmd := e.client.B().Xrange().Key(keysOf(room).log).Start(strconv.FormatUint(after+1, 10) + "-0").End("+").Count(int64(limit)).Build()
	entries, err := e.do(ctx, "history", cmd).AsXRange()
	if err != nil {
		return nil, err
	}
	return records(entries, false)
}

// Latest returns up to n of the newest messages, oldest first.
func (e *Engine) Latest(ctx context.Context, room string, n int) ([]Record, error) {
	cmd := e.client.B().Xrevrange().Key(keysOf(room).log).End("+").Start("-").Count(int64(n)).Build()
	entries, err := e.do(ctx, "history", cmd).AsXRange()
	if err != nil {
		return nil, err
	}
	return records(entries, true)
}

func records(entries []rueidis.XRangeEntry, reverse bool) ([]Record, error) {
	out := make([]Record, len(entries))
	for i, x := range entries {
		rec, err := recordOf(x)
		if err != nil {
			return nil, err
		}
		if reverse {
			out[len(entries)-1-i] = rec
		} else {
			out[i] = rec
		}
	}
	return out, nil
}

// Rotate gives room a new epoch if its epoch is still seen (see
// rotateScript); it returns the epoch now current.
func (e *Engine) Rotate(ctx context.Context, room, seen string) (string, error) {
	return e.exec(ctx, "rotate", rotateScript, []string{keysOf(room).meta}, []string{seen, NewEpoch()}).ToString()
}
