// Package web is the browser client the relay serves at / and /r/<room>:
// plain HTML, CSS and JavaScript modules written for Heartline, embedded in
// the binary, speaking the same wire protocol as the desktop app.
//
// Pages carry a strict Content-Security-Policy (scripts and styles from the
// relay only, nothing inline, no framing). Static files live under
// /app/<version>/, where version is a hash of every embedded file, so a
// browser may cache them for good: a relay with other files serves them
// under another path, and the page (never cached without revalidation)
// names the new one.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/heartline/heartline/assets"
)

//go:embed static
var static embed.FS

// Prefix is where the static files are served (followed by the version).
const Prefix = "/app/"

// file is one static file, ready to serve.
type file struct {
	body, gz []byte
	ctype    string
	etag     string
}

type site struct {
	version string
	index   file
	files   map[string]file
}

var (
	loadOnce sync.Once
	loaded   *site
)

// Handler serves the web client: the page at "/" and "/r/<room>", its files
// under Prefix. Mount it on those paths; anything else it answers with 404.
func Handler() http.Handler {
	loadOnce.Do(func() { loaded = load() })
	return loaded
}

// staticFiles returns the embedded files by name.
func staticFiles() map[string][]byte {
	out := map[string][]byte{}
	fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := static.ReadFile(p)
			out[strings.TrimPrefix(p, "static/")] = b
		}
		return nil
	})
	return out
}

func load() *site {
	raw := staticFiles()
	raw["icon.png"], _ = assets.IconPNG(64)
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	h := sha256.New()
	for _, n := range slices.Sorted(slices.Values(names)) {
		h.Write([]byte(n))
		h.Write(raw[n])
	}
	s := &site{version: hex.EncodeToString(h.Sum(nil))[:12], files: map[string]file{}}
	for n, b := range raw {
		if n == "index.html" {
			continue
		}
		s.files[n] = prepare(n, b)
	}
	page := bytes.ReplaceAll(raw["index.html"], []byte("{{APP}}"), []byte(Prefix+s.version))
	s.index = prepare("index.html", page)
	return s
}

func prepare(name string, body []byte) file {
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // the system's MIME table may lack these
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".html":
		ctype = "text/html; charset=utf-8"
	}
	f := file{body: body, ctype: ctype}
	sum := sha256.Sum256(body)
	f.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	if !strings.HasPrefix(ctype, "image/") {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(body)
		zw.Close()
		f.gz = buf.Bytes()
	}
	return f
}

// roomPath is the page's path for a room; the page checks the name itself
// and says what is wrong with a bad one.
var roomPath = regexp.MustCompile(`^/r/[^/]{1,64}$`)

// hostChars keeps the Host header's value out of the policy unless it is a
// plain host[:port] (the relay has already checked it against --public-host).
var hostChars = regexp.MustCompile(`^[A-Za-z0-9.\-:\[\]]{1,255}$`)

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || roomPath.MatchString(p):
		s.serve(w, r, s.index, "no-cache", true)
	case strings.HasPrefix(p, Prefix):
		rest := strings.TrimPrefix(p, Prefix)
		version, name, _ := strings.Cut(rest, "/")
		f, ok := s.files[name]
		if !ok || version != s.version {
			// An old page after a relay upgrade asks for the old version:
			// a reload fetches the new page.
			http.Error(w, "no such file in this relay's web client; reload the page", http.StatusNotFound)
			return
		}
		s.serve(w, r, f, "public, max-age=31536000, immutable", false)
	default:
		http.NotFound(w, r)
	}
}

func (s *site) serve(w http.ResponseWriter, r *http.Request, f file, cache string, page bool) {
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", cache)
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if page {
		h.Set("Content-Security-Policy", policy(r.Host))
		h.Set("X-Frame-Options", "DENY")
	}
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// policy is the page's Content-Security-Policy: everything from the relay
// itself, nothing inline, no plugins, no framing. The websocket is named
// explicitly as well, for browsers whose 'self' does not cover ws: and wss:.
func policy(host string) string {
	connect := "'self'"
	if hostChars.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
		"connect-src " + connect + "; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}
