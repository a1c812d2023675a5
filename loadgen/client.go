package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// env is what every member of a run shares: where to connect, from which
// source addresses, and the clock that send timestamps are relative to.
type env struct {
	url      string   // the first relay URL (the only one unless several were given)
	urls     []string // every relay URL; members are spread over them round robin
	srcs     []net.IP
	token    string
	readBuf  int
	writeBuf int
	wpool    websocket.BufferPool
	start    time.Time // monotonic base: send stamps are nanoseconds since start
	// latFrom: latencies are recorded only for messages sent at or after
	// this env.now() (a warm-up excludes the start of a run).
	latFrom atomic.Int64
	// hbInterval is the ping interval of the first welcome (ns); the
	// heartbeat goroutine waits for it.
	hbInterval atomic.Int64

	// restartNow, when set, is closed where storm mode asks the operator
	// to restart the relay (tests restart an in-process relay there).
	restartNow chan struct{}

	failMu sync.Mutex
	fails  map[string]int // join failures by kind
}

// urlFor is the relay URL of the i-th member of a group: round robin over
// the URLs, so N members spread evenly (the first ones get one more).
func (e *env) urlFor(i int) string {
	if len(e.urls) == 0 {
		return e.url
	}
	return e.urls[i%len(e.urls)]
}

// now is the monotonic time since the run started, in nanoseconds.
func (e *env) now() int64 { return int64(time.Since(e.start)) }

func (e *env) noteFail(kind string) {
	e.failMu.Lock()
	defer e.failMu.Unlock()
	if len(e.fails) < 50 || e.fails[kind] > 0 { // hostile variety stays bounded
		e.fails[kind]++
	} else {
		e.fails["other"]++
	}
}

func (e *env) failures() map[string]int {
	e.failMu.Lock()
	defer e.failMu.Unlock()
	out := make(map[string]int, len(e.fails))
	for k, v := range e.fails {
		out[k] = v
	}
	return out
}

// member is one load-generator connection acting as a room member. Its reader
// goroutine owns seqs, lat and ackLat; the counters are atomics so progress
// can be read while it runs.
type member struct {
	idx  int
	room string
	name string
	key  string
	src  net.IP
	url  string // the relay it connects to; "" means env.url

	wmu     sync.Mutex // serialises writes; guards ws
	ws      *websocket.Conn
	leaving atomic.Bool // we sent bye or are closing: a close is expected

	// From the latest welcome.
	epoch      string
	welcomeSeq uint64
	heartbeat  time.Duration
	recovered  bool

	track  bool    // keep seqs
	seqs   *seqSet // set by the first welcome when track
	lat    *hist   // send -> receipt of room msgs; nil: not tracked
	ackLat *hist   // send -> ack of own msgs; nil: not a sender
	onMsg  func(m *member, h *frameHead, now int64)
	onAck  func(m *member, h *frameHead, now int64)
	onErr  func(m *member, h *frameHead)
	onMeta func(m *member, typ string, frame []byte) // joined/presence/left; only when set

	msgs, acks, pongs, meta, malformed atomic.Int64
	errFrames                          atomic.Int64
	high                               atomic.Uint64 // highest msg/ack seq seen
	closeCode                          atomic.Int64  // how the relay closed it (0: open or closed by us)
	rawClose                           atomic.Int64  // the close code seen, even when we asked for it
	welcomes                           atomic.Int64  // welcomes received (joins and resumes)
	endClose                           int64         // closeCode when the measurement ended (markEnd)
	lastRecovered                      atomic.Bool   // the latest welcome's recovered flag
	pingAt                             atomic.Int64  // env.now() of the last ping
	rttSum, rttN                       atomic.Int64  // pong round trips, ns
	rttMax                             atomic.Int64
	errMu                              sync.Mutex
	errCodes                           map[string]int
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// runID names rooms so that runs never share members or seqs.
func runID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// join dials, says hello (with resume when the member holds seqs) and waits
// for the welcome. On success the member holds a live connection; the caller
// starts its reader.
func (e *env) join(ctx context.Context, m *member, resume bool) error {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: m.src}, Timeout: 10 * time.Second}
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return newEdgeConn(c), nil
		},
		ReadBufferSize:   e.readBuf,
		WriteBufferSize:  e.writeBuf,
		WriteBufferPool:  e.wpool,
		HandshakeTimeout: 10 * time.Second,
	}
	target := m.url
	if target == "" {
		target = e.url
	}
	ws, resp, err := d.DialContext(ctx, target, nil)
	if err != nil {
		if resp != nil {
			e.noteFail(fmt.Sprintf("upgrade refused: HTTP %d", resp.StatusCode))
			return fmt.Errorf("upgrade refused: HTTP %d", resp.StatusCode)
		}
		e.noteFail(dialErrKind(err))
		return err
	}
	hello := &protocol.Hello{V: protocol.Version, Room: m.room, Name: m.name, Key: m.key,
		Token: e.token, Client: "heartline-load/1"}
	if resume && m.epoch != "" && m.seqs != nil {
		hello.Resume = &protocol.Resume{Epoch: m.epoch, LastSeq: m.seqs.contig}
	}
	b, err := protocol.Encode(hello)
	if err != nil {
		ws.Close()
		return err
	}
	deadline := time.Now().Add(protocol.HelloTimeout)
	_ = ws.SetWriteDeadline(deadline)
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		ws.Close()
		e.noteFail("hello write: " + dialErrKind(err))
		return err
	}
	_ = ws.SetReadDeadline(deadline)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			kind := "no welcome: " + dialErrKind(err)
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				kind = fmt.Sprintf("no welcome: closed %d", ce.Code)
			}
			e.noteFail(kind)
			return fmt.Errorf("%s", kind)
		}
		f, err := protocol.DecodeRelay(data)
		if err != nil {
			continue // counted nowhere: a relay bug shows as a missing welcome
		}
		switch f := f.(type) {
		case *protocol.Welcome:
			m.epoch, m.welcomeSeq, m.recovered = f.Epoch, f.Seq, f.Recovered
			m.lastRecovered.Store(f.Recovered)
			m.welcomes.Add(1)
			m.heartbeat = time.Duration(f.Heartbeat.IntervalMS) * time.Millisecond
			if m.heartbeat > 0 {
				e.hbInterval.CompareAndSwap(0, int64(m.heartbeat))
			}
			switch {
			case !m.track:
			case m.seqs == nil || !resume:
				// A fresh join expects only what comes after it.
				m.seqs = newSeqSet(f.Seq + 1)
			default:
				// A resume keeps what it tracked and fills in the history.
				for _, h := range f.History {
					m.seqs.add(h.Seq)
				}
			}
			m.high.Store(max(m.high.Load(), f.Seq))
			_ = ws.SetReadDeadline(time.Time{})
			_ = ws.SetWriteDeadline(time.Time{})
			goLean(ws.NetConn())
			m.wmu.Lock()
			m.ws = ws
			m.wmu.Unlock()
			return nil
		case *protocol.Error:
			e.noteFail("refused: " + f.Code)
			ws.Close()
			return fmt.Errorf("relay refused the hello: %s: %s", f.Code, f.Message)
		}
	}
}

func dialErrKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		s := op.Err.Error() // without the addresses, so kinds stay few
		if len(s) > 60 {
			s = s[:60]
		}
		return op.Op + ": " + s
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// write sends one text frame; it fails fast when the member has no live link.
func (m *member) write(b []byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.ws == nil {
		return errNotConnected
	}
	_ = m.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return m.ws.WriteMessage(websocket.TextMessage, b)
}

// cut closes the member's socket without a close frame, as a vanished
// client would; its reader then ends.
func (m *member) cut() {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.ws != nil {
		m.ws.NetConn().Close()
	}
}

// connected reports whether the member has a live link.
func (m *member) connected() bool {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.ws != nil
}

var errNotConnected = errors.New("not connected")

// ping sends a heartbeat and stamps it for the pong's round trip.
func (m *member) ping(e *env) {
	var buf [48]byte
	b := append(buf[:0], `{"type":"ping","t":`...)
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	b = append(b, '}')
	m.pingAt.Store(e.now())
	_ = m.write(b)
}

// readLoop consumes frames until the connection ends. It is the member's only
// reader and owns its histograms and seq set while it runs.
func (m *member) readLoop(e *env) {
	m.wmu.Lock()
	ws := m.ws
	m.wmu.Unlock()
	buf := make([]byte, 0, 512)
	var h frameHead
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			m.noteClose(err)
			return
		}
		buf, err = readAll(r, buf[:0])
		if err != nil {
			m.noteClose(err)
			return
		}
		now := e.now()
		if !scanHead(buf, &h) {
			m.malformed.Add(1)
			continue
		}
		switch string(h.typ) {
		case protocol.TypeMsg:
			m.msgs.Add(1)
			if m.seqs != nil && h.hasSeq {
				m.seqs.add(h.seq)
			}
			if h.seq > m.high.Load() {
				m.high.Store(h.seq)
			}
			if m.lat != nil {
				if sent, ok := sentAt(h.id); ok && sent >= e.latFrom.Load() && now >= sent {
					m.lat.add(uint64(now-sent) / 1000)
				}
			}
			if m.onMsg != nil {
				m.onMsg(m, &h, now)
			}
		case protocol.TypeAck:
			m.acks.Add(1)
			// A resent message's ack repeats a seq the sender may already hold
			// (from its first ack or from the resume history): not a duplicate delivery.
			if m.seqs != nil && h.hasSeq && !m.seqs.has(h.seq) {
				m.seqs.addAck(h.seq)
			}
			if h.seq > m.high.Load() {
				m.high.Store(h.seq)
			}
			if m.ackLat != nil {
				if sent, ok := sentAt(h.id); ok && sent >= e.latFrom.Load() && now >= sent {
					m.ackLat.add(uint64(now-sent) / 1000)
				}
			}
			if m.onAck != nil {
				m.onAck(m, &h, now)
			}
		case protocol.TypePong:
			m.pongs.Add(1)
			if at := m.pingAt.Load(); at > 0 {
				rtt := now - at
				m.rttSum.Add(rtt)
				m.rttN.Add(1)
				if rtt > m.rttMax.Load() {
					m.rttMax.Store(rtt)
				}
			}
		case protocol.TypeError:
			m.errFrames.Add(1)
			m.errMu.Lock()
			if m.errCodes == nil {
				m.errCodes = map[string]int{}
			}
			if len(m.errCodes) < 16 {
				m.errCodes[string(h.code)]++
			}
			m.errMu.Unlock()
			if m.onErr != nil {
				m.onErr(m, &h)
			}
		case protocol.TypeJoined, protocol.TypePresence, protocol.TypeLeft:
			m.meta.Add(1)
			if m.onMeta != nil {
				m.onMeta(m, string(h.typ), buf)
			}
		default:
			m.meta.Add(1)
		}
	}
}

// readAll reads one websocket message into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (m *member) noteClose(err error) {
	var ce *websocket.CloseError
	code := int64(1006) // abnormal: no close frame
	if errors.As(err, &ce) {
		code = int64(ce.Code)
	}
	m.rawClose.Store(code)
	if m.leaving.Load() && (code == protocol.CloseNormal || code == 1006) {
		code = 0 // the end we asked for
	}
	m.closeCode.Store(code)
	m.wmu.Lock()
	if m.ws != nil {
		m.ws.Close()
		m.ws = nil
	}
	m.wmu.Unlock()
}

// sentAt extracts the send stamp from a message id of the form "<n>.<ns>".
func sentAt(id []byte) (int64, bool) {
	dot := -1
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '.' {
			dot = i
			break
		}
	}
	if dot < 0 || dot == len(id)-1 {
		return 0, false
	}
	var n int64
	for _, c := range id[dot+1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// msgFrame builds a msg frame whose id carries the send stamp, into buf.
func msgFrame(buf []byte, n uint64, sent int64, text string) []byte {
	b := append(buf[:0], `{"type":"msg","id":"`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, `","text":"`...)
	b = append(b, text...)
	return append(b, `"}`...)
}

// leave ends every member's connection: bye (the relay answers with close
// 1000) or, when abrupt, a TCP close without a close frame. It waits for the
// readers in wg, at most wait, then closes whatever is left.
func leave(members []*member, bye bool, wg *sync.WaitGroup, wait time.Duration) {
	for _, m := range members {
		m.leaving.Store(true)
	}
	if bye {
		sem := make(chan struct{}, 64)
		var bw sync.WaitGroup
		for _, m := range members {
			sem <- struct{}{}
			bw.Add(1)
			go func() {
				defer func() { <-sem; bw.Done() }()
				_ = m.write([]byte(`{"type":"bye"}`))
			}()
		}
		bw.Wait()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			return
		case <-time.After(wait):
		}
	}
	for _, m := range members {
		m.cut()
	}
	wg.Wait()
}

// joinAll connects members with at most conc dials in flight and starts each
// one's reader under wg. It returns how many joined and how long it took.
func (e *env) joinAll(ctx context.Context, members []*member, conc int, wg *sync.WaitGroup, progress func(int)) (int, time.Duration) {
	start := time.Now()
	var ok atomic.Int64
	sem := make(chan struct{}, conc)
	var jw sync.WaitGroup
	for i, m := range members {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		jw.Add(1)
		go func() {
			defer func() { <-sem; jw.Done() }()
			if err := e.join(ctx, m, false); err != nil {
				return
			}
			ok.Add(1)
			wg.Add(1)
			go func() { defer wg.Done(); m.readLoop(e) }()
		}()
		if progress != nil && (i+1)%1000 == 0 {
			progress(i + 1)
		}
	}
	jw.Wait()
	return int(ok.Load()), time.Since(start)
}

// heartbeat pings every live member once per interval (the first welcome's),
// spread evenly over the interval, from this one goroutine (no timer per
// member). Start it before joining: members that joined early must not go
// silent while the rest join. Members without a link are skipped. It returns
// when ctx ends.
func heartbeat(ctx context.Context, e *env, members []*member) {
	if len(members) == 0 {
		return
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var start time.Time
	var interval time.Duration
	var done int64 // pings issued so far (cumulative over rounds)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if interval == 0 {
			if interval = time.Duration(e.hbInterval.Load()); interval == 0 {
				continue
			}
			start = time.Now()
		}
		due := int64(float64(time.Since(start)) / float64(interval) * float64(len(members)))
		for ; done < due; done++ {
			m := members[done%int64(len(members))]
			if !m.leaving.Load() {
				m.ping(e)
			}
		}
	}
}
