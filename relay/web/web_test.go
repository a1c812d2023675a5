package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// budget is the whole web app gzipped, file by file as a browser fetches it.
const budget = 60 << 10

func gzipSize(t *testing.T, b []byte) int {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Len()
}

func TestSizeBudget(t *testing.T) {
	total := 0
	for name, b := range staticFiles() {
		n := gzipSize(t, b)
		t.Logf("%-14s %6d bytes, %6d gzipped", name, len(b), n)
		total += n
	}
	icon := len(loadedSite().files["icon.png"].body) // a PNG: served as it is
	t.Logf("%-14s %6d bytes", "icon.png", icon)
	total += icon
	t.Logf("total %d bytes gzipped (budget %d)", total, budget)
	if total > budget {
		t.Fatalf("the web app is %d bytes gzipped, over its budget of %d", total, budget)
	}
	if total < 5<<10 {
		t.Fatalf("the web app is only %d bytes gzipped: are the files embedded?", total)
	}
}

func loadedSite() *site { return Handler().(*site) }

func get(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Host = "127.0.0.1:8080"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// TestPagePolicy: the page has a strict CSP, no inline script or style,
// and names its files under the versioned prefix, which serves them for good.
func TestPagePolicy(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/", "/r/lobby"} {
		resp := get(t, h, path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "ws://127.0.0.1:8080"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("CSP allows inline code: %q", csp)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("page Cache-Control %q, want no-cache", cc)
		}
		page := string(body)
		scripts := regexp.MustCompile(`<script[^>]*>([^<]*)</script>`).FindAllStringSubmatch(page, -1)
		if len(scripts) == 0 {
			t.Fatal("no script tag in the page")
		}
		for _, s := range scripts {
			if strings.TrimSpace(s[1]) != "" || !strings.Contains(s[0], `src="/app/`) {
				t.Errorf("inline script in the page: %s", s[0])
			}
		}
		if regexp.MustCompile(`(?i)<style|\son[a-z]+=|style=`).MatchString(page) {
			t.Error("the page has inline style or an event handler attribute")
		}
		src := regexp.MustCompile(`src="(/app/[0-9a-f]+/app\.js)"`).FindStringSubmatch(page)
		if src == nil {
			t.Fatalf("no versioned app.js in the page")
		}
		js := get(t, h, src[1], "Accept-Encoding", "gzip")
		if js.StatusCode != 200 || js.Header.Get("Content-Encoding") != "gzip" ||
			!strings.Contains(js.Header.Get("Cache-Control"), "immutable") || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("GET %s: %d %v", src[1], js.StatusCode, js.Header)
		}
		zr, err := gzip.NewReader(js.Body)
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		if !bytes.Equal(plain, staticFiles()["app.js"]) {
			t.Error("the gzipped app.js is not app.js")
		}
		if again := get(t, h, src[1], "If-None-Match", js.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
			t.Errorf("revalidation: %d, want 304", again.StatusCode)
		}
	}
	for _, path := range []string{"/app/000000000000/app.js", "/app/x", "/r/a/b", "/nothing"} {
		if resp := get(t, h, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}
