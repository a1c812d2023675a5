package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/assets"
	"github.com/heartline/heartline/relay/avatar"
	"github.com/heartline/heartline/relay/internal/wsconn"
	"github.com/heartline/heartline/relay/metrics"
	"github.com/heartline/heartline/shared/protocol"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.handleWS)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if s.cfg.MetricsListen == "" {
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	mux.HandleFunc("GET /v1/rooms", s.handleRooms)
	mux.HandleFunc("POST /v1/avatars", s.handleAvatarUpload)
	mux.HandleFunc("GET /v1/avatars", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"builtin": assets.BuiltinAvatarNames()})
	})
	mux.HandleFunc("GET /v1/avatars/builtin/{name}", s.handleBuiltinAvatar)
	mux.HandleFunc("GET /v1/avatars/{hex}", s.handleAvatar)
	return s.checkHost(mux)
}

// opsRoutes is what MetricsListen serves: the metrics, and the probes too
// so that a monitoring agent needs only the internal port.
func (s *Server) opsRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	return mux
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
		return
	}
	if why := s.redisReady(); why != "" {
		// The load balancer sends new clients elsewhere; the members here
		// keep their links (messages get retry errors until Redis is back).
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, why+"\n")
		return
	}
	if err := s.storeWriteErr(); err != nil {
		// The relay would take messages it cannot keep: every one would get
		// error internal. The body gives the cause (e.g. "no space left on
		// device"), not the error's file paths: /readyz has no auth.
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "store cannot write: "+rootCause(err).Error()+"\n")
		return
	}
	io.WriteString(w, "ready\n")
}

// writeChecker is implemented by a Store that knows whether its writes
// commit (*store.Store: WriteErr); /readyz uses it.
type writeChecker interface{ WriteErr() error }

func (s *Server) storeWriteErr() error {
	if wc, ok := s.store.(writeChecker); ok {
		return wc.WriteErr()
	}
	return nil
}

// rootCause is the innermost error of err's chain (an errno such as
// ENOSPC, for a failed write).
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeJSONError writes the {"error","message"} body every refusal uses.
func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // desktop app and other non-browser clients
	}
	for _, o := range s.cfg.Origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	if len(s.cfg.Origins) == 0 {
		if u, err := url.Parse(origin); err == nil && strings.EqualFold(u.Host, r.Host) {
			return true
		}
	}
	s.metrics.HTTPRefused.WithLabelValues("origin").Inc()
	return false
}

// reserve counts a connection against --max-conns and --max-conns-per-ip
// before the upgrade; it returns the HTTP status that refuses it, or 0.
func (s *Server) reserve(ip string) int {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.draining.Load() {
		return http.StatusServiceUnavailable
	}
	if s.cfg.MaxConns > 0 && s.total >= s.cfg.MaxConns {
		s.metrics.HTTPRefused.WithLabelValues("max_conns").Inc()
		return http.StatusServiceUnavailable
	}
	if s.cfg.MaxConnsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnsPerIP {
		s.metrics.HTTPRefused.WithLabelValues("max_conns_per_ip").Inc()
		return http.StatusTooManyRequests
	}
	s.perIP[ip]++
	s.total++
	return 0
}

func (s *Server) release(ip string) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	s.total--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// authWait refuses a request from an address that sits out an auth backoff
// with 429 and Retry-After, before anything else is read; it reports
// whether it did.
func (s *Server) authWait(w http.ResponseWriter, ip, at string) bool {
	d := s.authThrottle.wait(ip, s.cfg.now())
	if d <= 0 {
		return false
	}
	s.metrics.AuthThrottled.WithLabelValues(at).Inc()
	secs := int((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSONError(w, http.StatusTooManyRequests, "throttled",
		fmt.Sprintf("too many failed sign-ins from your address: wait %d s, then try again", secs))
	return true
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	ip := s.proxies.client(r)
	if s.authWait(w, ip, metrics.ThrottledUpgrade) {
		s.metrics.HTTPRefused.WithLabelValues("auth_throttled").Inc()
		return
	}
	switch s.reserve(ip) {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
		msg := "the relay is at its connection limit; try again later"
		if s.draining.Load() {
			msg = "the relay is shutting down; reconnect in a moment"
		}
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", msg)
		return
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusTooManyRequests, "too_many_connections", "too many connections from your address; close some and try again")
		return
	}
	hw := &wsconn.HijackWriter{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		s.release(ip)
		s.log.Debug("upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := s.newConn(ws, hw.Wrapped(), r.RemoteAddr, ip)

	// Registering and Shutdown's snapshot share connsMu, so a connection is
	// either closed by Shutdown or sees draining here.
	s.connsMu.Lock()
	if s.draining.Load() {
		s.connsMu.Unlock()
		s.release(ip)
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "relay shutting down"), time.Now().Add(time.Second))
		ws.Close()
		return
	}
	c.SetSlot(s.conns.Add(c, time.Now().UnixNano()))
	s.connWG.Add(1) // until its reader and writer are done (wsconn.Shared.Conns)
	s.connsMu.Unlock()
	s.metrics.Connections.Inc()
	s.log.Info("connect", "remote", c.Remote(), "conn", c.Serial())

	c.Start(s.reactor)
}

// unregister is a connection's end, once its reader has returned for good.
func (s *Server) unregister(c *conn) {
	s.connsMu.Lock()
	s.conns.Remove(c.Slot())
	s.connsMu.Unlock()
	s.release(c.ip)
	s.metrics.Connections.Dec()
	_, m := c.roomMember()
	attrs := []any{"remote", c.Remote(), "conn", c.Serial()}
	if m != nil {
		attrs = append(attrs, "member", m.id)
	}
	s.log.Info("disconnect", attrs...)
}

// bearer reports whether the request carries "Authorization: Bearer <token>".
func bearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

type adminMember struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	State       string  `json:"state"`
	Remote      string  `json:"remote"`
	IdleSeconds float64 `json:"idle_seconds"`
}

type adminRoom struct {
	Room    string        `json:"room"`
	Seq     uint64        `json:"seq"`
	Epoch   string        `json:"epoch"`
	Members []adminMember `json:"members"`
}

// handleRooms lists rooms and members for operators (never keys or key
// hashes). idle_seconds is the time since the member's connection last sent
// anything (for an away member: since its link dropped).
func (s *Server) handleRooms(w http.ResponseWriter, r *http.Request) {
	ip := s.proxies.client(r)
	if s.cfg.AdminToken != "" && s.authWait(w, ip, metrics.ThrottledRooms) {
		return
	}
	if !bearer(r, s.cfg.AdminToken) {
		if s.cfg.AdminToken != "" && r.Header.Get("Authorization") != "" {
			s.authFailed(ip, metrics.AuthAdminToken)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="heartline-admin"`)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <admin token> (set with --admin-token)")
		return
	}
	if s.inRedis() {
		s.handleSharedRooms(w)
		return
	}
	s.roomsMu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, rm := range s.rooms {
		rooms = append(rooms, rm)
	}
	s.roomsMu.Unlock()
	now := time.Now()
	out := make([]adminRoom, 0, len(rooms))
	for _, rm := range rooms {
		select {
		case <-rm.ready:
		default:
			continue // still being created
		}
		rm.mu.Lock()
		ar := adminRoom{Room: rm.name, Seq: rm.committed, Epoch: rm.epoch, Members: make([]adminMember, 0, len(rm.members))}
		for _, m := range rm.members {
			seen := m.lastSeen
			if m.conn != nil {
				seen = m.conn.LastSeen()
			}
			idle := max(now.Sub(seen).Seconds(), 0)
			ar.Members = append(ar.Members, adminMember{ID: m.id, Name: m.name, State: m.state, Remote: m.remote,
				IdleSeconds: float64(int64(idle*10)) / 10})
		}
		rm.mu.Unlock()
		sort.Slice(ar.Members, func(i, j int) bool { return ar.Members[i].Name < ar.Members[j].Name })
		out = append(out, ar)
	}
	// Rooms nobody is in are not in memory, but they exist: their history is
	// stored and the next join resumes it. List them too, without members.
	stored, err := s.store.Rooms()
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "internal", "cannot read the rooms from the store: "+err.Error())
		return
	}
	listed := make(map[string]bool, len(out))
	for _, ar := range out {
		listed[ar.Room] = true
	}
	for _, st := range stored {
		if !listed[st.Name] {
			out = append(out, adminRoom{Room: st.Name, Seq: st.Seq, Epoch: st.Epoch, Members: []adminMember{}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	writeJSON(w, http.StatusOK, map[string]any{"rooms": out})
}

const (
	// maxDrainedUpload bounds what a refused upload costs the relay to read.
	maxDrainedUpload = 1 << 20
	// avatarUploadsInFlight bounds the upload bodies held at once (each at
	// most avatar.MaxUpload) while they are read, wait or are decoded.
	avatarUploadsInFlight = 32
	// avatarDecodeWait is how long an upload waits for room in the decode
	// budget before it is told to come back (429).
	avatarDecodeWait = 10 * time.Second
	// avatarUploadsPerAddr bounds the uploads one client address has in
	// flight, so that a few slow senders cannot hold every slot.
	avatarUploadsPerAddr = 2
	// avatarBodyWait is how long an upload's body may take to arrive (256
	// KiB in 10 s is 26 KB/s); a slower one gets 408 and frees its slot.
	avatarBodyWait = 10 * time.Second
)

// uploadsInFlight counts each client address's avatar uploads in flight.
type uploadsInFlight struct {
	mu sync.Mutex
	n  map[string]int
}

// begin admits one more upload from addr, or reports false at the bound.
func (u *uploadsInFlight) begin(addr string) (end func(), ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[addr] >= avatarUploadsPerAddr {
		return nil, false
	}
	if u.n == nil {
		u.n = map[string]int{}
	}
	u.n[addr]++
	return func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.n[addr]--; u.n[addr] <= 0 {
			delete(u.n, addr)
		}
	}, true
}

func (s *Server) handleAvatarUpload(w http.ResponseWriter, r *http.Request) {
	count := func(result string) { s.metrics.AvatarUploads.WithLabelValues(result).Inc() }
	// A refusal (no token, too large) answers before reading the body. Read
	// what is left, up to a bound, before the response goes out: a socket
	// closed on unread bytes is reset, and a client still sending its
	// picture would see "connection reset" instead of the 401 or 413.
	// The drain waits a second at most: a refused sender that stalls gets
	// its answer anyway.
	rc := http.NewResponseController(w)
	defer func() {
		rc.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(r.Body, maxDrainedUpload))
	}()
	// The body must arrive in time: a slow sender holds a slot, and its
	// address's share of them.
	rc.SetReadDeadline(time.Now().Add(s.avatarBodyWait))
	ip := s.proxies.client(r)
	if s.cfg.Token != "" && s.authWait(w, ip, metrics.ThrottledAvatars) {
		count("throttled")
		return
	}
	if s.cfg.Token != "" && !bearer(r, s.cfg.Token) {
		if r.Header.Get("Authorization") != "" { // none guesses nothing
			s.authFailed(ip, metrics.AuthToken)
		}
		count("unauthorized")
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "this relay needs its token: send Authorization: Bearer <token>")
		return
	}
	if s.avatars == nil {
		count("error")
		writeJSONError(w, http.StatusNotFound, "no_uploads", "this relay does not store uploaded pictures")
		return
	}
	if d, ok := s.avatarLimits.allow(ip, time.Now()); !ok {
		count("rate_limited")
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		writeJSONError(w, http.StatusTooManyRequests, "rate_limited", "too many uploads from your address; wait a minute and try again")
		return
	}
	if r.ContentLength > avatar.MaxUpload {
		count("too_large")
		writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", avatar.ErrTooLarge.Error())
		return
	}
	endAddr, ok := s.uploading.begin(ip)
	if !ok {
		count("busy")
		w.Header().Set("Retry-After", "2")
		writeJSONError(w, http.StatusTooManyRequests, "busy", "your address is already uploading pictures; wait for them to finish")
		return
	}
	defer endAddr()
	end, ok := s.decodes.Begin()
	if !ok {
		count("busy")
		writeBusy(w)
		return
	}
	defer end()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, avatar.MaxUpload))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, os.ErrDeadlineExceeded) {
			count("error")
			writeJSONError(w, http.StatusRequestTimeout, "too_slow", "the picture arrived too slowly; try again on a better connection")
			return
		}
		if errors.As(err, &mbe) {
			count("too_large")
			writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", avatar.ErrTooLarge.Error())
			return
		}
		count("error")
		writeJSONError(w, http.StatusBadRequest, "bad_request", "the upload could not be read: "+err.Error())
		return
	}
	ct := strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0])
	ctx, cancel := context.WithTimeout(r.Context(), avatarDecodeWait)
	png, err := s.decodes.Process(ctx, body, strings.ToLower(ct))
	cancel()
	switch {
	case errors.Is(err, avatar.ErrBusy):
		count("busy")
		writeBusy(w)
		return
	case errors.Is(err, avatar.ErrTooLarge):
		count("too_large")
		writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
		return
	case errors.Is(err, avatar.ErrDimensions):
		count("bad_image")
		writeJSONError(w, http.StatusUnprocessableEntity, "too_many_pixels", err.Error())
		return
	case errors.Is(err, avatar.ErrUnsupported):
		count("bad_image")
		writeJSONError(w, http.StatusUnsupportedMediaType, "bad_image", err.Error())
		return
	case err != nil:
		count("error")
		writeJSONError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	h, err := s.avatars.Save(png)
	if err != nil {
		count("error")
		s.log.Error("cannot store avatar", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "internal", "the relay could not store the picture; try again later")
		return
	}
	if s.inRedis() {
		ctx, cancel := redisCtx()
		err := s.redis.PutAvatar(ctx, h, png)
		cancel()
		if err != nil {
			count("error")
			s.log.Error("cannot share avatar through Redis", "err", err)
			writeJSONError(w, http.StatusServiceUnavailable, "busy", "the relay cannot share the picture with the other relays right now; try again later")
			return
		}
	}
	count("stored")
	s.log.Info("avatar stored", "avatar", h, "remote", r.RemoteAddr, "bytes", len(png))
	writeJSON(w, http.StatusCreated, map[string]string{"avatar": protocol.AvatarSHA256 + ":" + h})
}

// writeBusy tells an uploader that the relay's picture budget is taken, and
// when to come back.
func writeBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "2")
	writeJSONError(w, http.StatusTooManyRequests, "busy", avatar.ErrBusy.Error())
}

const immutable = "public, max-age=31536000, immutable"

func (s *Server) handleAvatar(w http.ResponseWriter, r *http.Request) {
	h := r.PathValue("hex")
	if !avatar.ValidHex(h) || s.avatars == nil || !s.hasAvatar(h) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such picture: the name is 64 lowercase hex digits of a stored picture")
		return
	}
	f, err := os.Open(s.avatars.Path(h))
	if err != nil {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such picture on this relay")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "internal", "cannot read the picture")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", immutable)
	w.Header().Set("ETag", `"`+h+`"`)
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func (s *Server) handleBuiltinAvatar(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	png, ok := assets.BuiltinAvatar(name)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "not_found", "no built-in avatar "+strconv.Quote(name)+"; GET /v1/avatars lists them")
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("ETag", `"builtin-`+avatar.Hash(png)[:16]+`"`)
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(png)))
}
