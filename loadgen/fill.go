package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// fillMode measures how fast one client address can grow a relay's disk:
// sockets from one source address send the longest messages at the relay's
// rate into a fresh room every -per-room messages, and the run reports the
// growth of the relay's database file and what the relay refused.
func fillMode(fs *flag.FlagSet) func(ctx context.Context, e *env, c *common) (any, error) {
	sockets := fs.Int("sockets", 20, "connections from the one source address")
	duration := fs.Duration("duration", 60*time.Second, "how long to fill")
	perRoom := fs.Int("per-room", 64, "messages per room before moving to a fresh one")
	rate := fs.Float64("rate", 5, "messages per second per socket (the relay's default --rate)")
	chars := fs.Int("chars", 4000, "characters per message (the relay's default --max-text); each is a 4-byte emoji")
	db := fs.String("db", "", "the relay's heartline.db, whose size is the figure (required)")
	return func(ctx context.Context, e *env, c *common) (any, error) {
		if *db == "" {
			return nil, errors.New("-db names the relay's heartline.db (in its --data-dir)")
		}
		if err := c.oneRelay("fill", "measures one relay's database file"); err != nil {
			return nil, err
		}
		size := func() int64 {
			st, err := os.Stat(*db)
			if err != nil {
				return 0
			}
			return st.Size()
		}
		res := fillResult{counts: &fillCounts{}, Source: e.srcs[0].String(), Sockets: *sockets, Duration: duration.Seconds(), StartBytes: size()}
		text := strings.Repeat("🙂", *chars)
		run := runID()
		ctx, cancel := context.WithTimeout(ctx, *duration)
		defer cancel()
		var wg sync.WaitGroup
		for s := range *sockets {
			wg.Go(func() { fillSocket(ctx, e, res.counts, fmt.Sprintf("fill-%s-%d", run, s), text, *perRoom, *rate) })
		}
		wg.Wait()
		time.Sleep(500 * time.Millisecond) // the store's last commit
		res.EndBytes = size()
		res.Rooms, res.Sent, res.HellosRefused, res.Refused = res.counts.rooms.Load(), res.counts.sent.Load(), res.counts.hellosRefused.Load(), res.counts.refused.Load()
		res.BytesPerSec = float64(res.EndBytes-res.StartBytes) / duration.Seconds()
		fmt.Printf("fill: %d sockets from %s for %s: %s grew %d -> %d bytes (%.0f B/s, %.0f B/s a socket); %d rooms joined, %d messages sent, %d refused; %d hellos refused\n",
			*sockets, res.Source, *duration, *db, res.StartBytes, res.EndBytes, res.BytesPerSec, res.BytesPerSec/float64(*sockets),
			res.Rooms, res.Sent, res.Refused, res.HellosRefused)
		return res, nil
	}
}

type fillCounts struct{ rooms, sent, refused, hellosRefused atomic.Int64 }

type fillResult struct {
	counts        *fillCounts
	Source        string  `json:"source"`
	Sockets       int     `json:"sockets"`
	Duration      float64 `json:"duration_s"`
	StartBytes    int64   `json:"db_bytes_start"`
	EndBytes      int64   `json:"db_bytes_end"`
	BytesPerSec   float64 `json:"db_bytes_per_s"`
	Rooms         int64   `json:"rooms_joined"`
	Sent          int64   `json:"messages_sent"`
	Refused       int64   `json:"messages_refused"` // error frames for messages (rate, storage full)
	HellosRefused int64   `json:"hellos_refused"`   // a new room refused (creation rate, room cap)
}

// fillSocket joins a fresh room, sends perRoom messages at rate, and moves
// on, until ctx ends. A refused hello waits a second before the next room.
func fillSocket(ctx context.Context, e *env, n *fillCounts, prefix, text string, perRoom int, rate float64) {
	d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: e.srcs[0]}}).DialContext, HandshakeTimeout: 5 * time.Second}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for room := 0; ctx.Err() == nil; room++ {
		ws, _, err := d.DialContext(ctx, e.url, nil)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		hello, _ := protocol.Encode(&protocol.Hello{V: protocol.Version, Room: fmt.Sprintf("%s-%d", prefix, room), Name: "filler", Key: newKey(), Token: e.token})
		ws.WriteMessage(websocket.TextMessage, hello)
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, first, err := ws.ReadMessage()
		if err != nil || !strings.Contains(string(first), `"welcome"`) {
			n.hellosRefused.Add(1)
			ws.Close()
			sleepCtx(ctx, time.Second)
			continue
		}
		n.rooms.Add(1)
		ws.SetReadDeadline(time.Time{})
		done := make(chan struct{})
		go func() { // count refusals; acks and echoes are read and dropped
			defer close(done)
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if strings.Contains(string(b), `"type":"error"`) {
					n.refused.Add(1)
				}
			}
		}()
		for i := 0; i < perRoom && ctx.Err() == nil; i++ {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
			msg, _ := protocol.Encode(&protocol.Send{ID: newKey(), Text: text})
			if ws.WriteMessage(websocket.TextMessage, msg) != nil {
				break
			}
			n.sent.Add(1)
		}
		ws.Close()
		<-done
	}
}
