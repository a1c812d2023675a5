package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// BenchmarkAcceptedMessagesOneRoom measures durable throughput into one room:
// 8 senders, each keeping up to 32 messages unacknowledged, 8 more members
// only listening; every message is fsync'd before its ack (group commit) and
// fanned out to 15 members. Reports accepted msgs/s.
//
//	go test -run '^$' -bench AcceptedMessagesOneRoom -benchtime 5000x ./relay/server/
func BenchmarkAcceptedMessagesOneRoom(b *testing.B) {
	const senders, listeners, window = 8, 8, 32
	srv, err := New(Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", Rate: 1e9, Burst: 1 << 30, SendQueue: 4096})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(b.Context())
	url := "ws://" + srv.Addr().String() + "/ws"
	dial := func(name string) *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		h, _ := protocol.Encode(&protocol.Hello{V: 1, Room: "bench", Name: name, Key: "bench-key-" + name + "-0123456789"})
		ws.WriteMessage(websocket.TextMessage, h)
		return ws
	}
	var lwg sync.WaitGroup
	for i := range listeners {
		ws := dial(fmt.Sprintf("listener%d", i))
		defer ws.Close()
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	per := b.N/senders + 1
	conns := make([]*websocket.Conn, senders)
	for i := range conns {
		conns[i] = dial(fmt.Sprintf("sender%d", i))
	}
	time.Sleep(100 * time.Millisecond)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks := make(chan struct{}, window)
			go func() {
				for {
					_, data, err := ws.ReadMessage()
					if err != nil {
						close(acks)
						return
					}
					if f, err := protocol.DecodeRelay(data); err == nil && f.FrameType() == protocol.TypeAck {
						<-acks
					}
				}
			}()
			for k := range per {
				acks <- struct{}{}
				m, _ := protocol.Encode(&protocol.Send{ID: fmt.Sprintf("%d-%d", i, k), Text: "a chat line of ordinary length"})
				if ws.WriteMessage(websocket.TextMessage, m) != nil {
					return
				}
			}
			for len(acks) > 0 {
				time.Sleep(time.Millisecond)
			}
			ws.Close()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(per*senders)/el.Seconds(), "accepted_msgs/s")
	b.ReportMetric(testutilCounter(srv.Metrics().MessagesAccepted), "accepted")
}
