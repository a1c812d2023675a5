package redisengine

import (
	"cmp"
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

// block is how a message's fields travel and are kept: netstrings
// ("5:hello") of member, client id, name, avatar and text.
func (m *Outgoing) block() string {
	b := make([]byte, 0, 5*4+len(m.MemberID)+len(m.ClientID)+len(m.Name)+len(m.Avatar)+len(m.Text))
	for _, f := range [...]string{m.MemberID, m.ClientID, m.Name, m.Avatar, m.Text} {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	return string(b)
}

// Published is what became of an Outgoing.
type Published struct {
	Seq       uint64
	TS        int64  // Redis's clock, ms, never earlier than the room's previous message
	Epoch     string // the room's epoch when it was published
	Duplicate bool   // the same (member, client id) was published before: Seq and TS are the original's
	Err       error
}

// publishChunk bounds the messages of one script call, so that one call
// never holds Redis for long; a longer batch is several calls in one round
// trip.
const publishChunk = 256

// Publish publishes msgs to room in order, in one round trip. A room
// unknown to Redis is created with epoch newEpoch.
func (e *Engine) Publish(ctx context.Context, room, newEpoch string, msgs []Outgoing) []Published {
	k := keysOf(room)
	keys := []string{k.meta, k.log, k.ids}
	maxlen := strconv.Itoa(e.history)
	var execs []rueidis.LuaExec
	for rest := msgs; len(rest) > 0; {
		n := min(len(rest), publishChunk)
		args := make([]string, 0, 3+2*n)
		args = append(args, newEpoch, maxlen, k.channel)
		for _, m := range rest[:n] {
			args = append(args, m.MemberID+"\x1f"+m.ClientID, m.block())
		}
		execs = append(execs, rueidis.LuaExec{Keys: keys, Args: args})
		rest = rest[n:]
	}
	start := time.Now()
	res := publishScript.ExecMulti(ctx, e.client, execs...)
	out := make([]Published, 0, len(msgs))
	var firstErr error
	for i, r := range res {
		want := min(len(msgs)-i*publishChunk, publishChunk)
		arr, err := r.ToArray()
		if err == nil && len(arr) != want {
			err = errShortReply
		}
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			for range want {
				out = append(out, Published{Err: err})
			}
			continue
		}
		for _, one := range arr {
			out = append(out, parsePublished(one))
		}
	}
	e.observe("publish", start, firstErr)
	return out
}

func parsePublished(r rueidis.RedisMessage) Published {
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
	rec := Record{Seq: seq, TS: ts}
	block, ok := f["b"]
	if !ok {
		// Written by a relay from before blocks (one field per value):
		// a Redis that outlived an upgrade still has them.
		rec.MemberID, rec.ClientID, rec.Name, rec.Avatar, rec.Text = f["m"], f["c"], f["n"], f["a"], f["x"]
		return rec, nil
	}
	d := netstrings{rest: block}
	rec.MemberID, rec.ClientID, rec.Name, rec.Avatar, rec.Text = d.next(), d.next(), d.next(), d.next(), d.next()
	if d.err != nil || d.rest != "" {
		return Record{}, fmt.Errorf("redis: bad stream entry %q", x.ID)
	}
	return rec, nil
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

// Before returns up to n of the newest messages with seq < before, oldest
// first.
func (e *Engine) Before(ctx context.Context, room string, before uint64, n int) ([]Record, error) {
	if before <= 1 {
		return nil, nil
	}
	cmd := e.client.B().Xrevrange().Key(keysOf(room).log).End(strconv.FormatUint(before-1, 10) + "-0").Start("-").Count(int64(n)).Build()
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
