// Package avatars turns avatar references ("builtin:fox", "sha256:<hex>") into
// pictures for the desktop UI: built-ins from the assets package, uploaded ones
// fetched once from the relay and kept on disk, all decoded once and scaled to
// the size the UI draws. It also prepares and uploads a picture the person
// chose (POST /v1/avatars).
package avatars

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/heartline/heartline/assets"
	"github.com/heartline/heartline/relay/avatar"
	"github.com/heartline/heartline/shared/protocol"
)

// DrawSize is the side in pixels of the decoded pictures handed to the UI:
// enough for the largest avatar the UI draws on a 2x screen.
const DrawSize = 96

// Cache resolves avatar references to decoded pictures. Get never blocks on
// the network: an uploaded picture not yet known starts a fetch and Get
// returns nil until OnLoaded reports it. Safe for concurrent use.
type Cache struct {
	dir      string       // where fetched pictures are kept; "" keeps none
	client   *http.Client // nil means a client with a 10 s timeout
	log      *slog.Logger
	onLoaded func(avatar string)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	base     string // relay HTTP base URL for fetches
	pics     map[string]image.Image
	inflight map[string]bool
	failed   map[string]time.Time
}

// Options configure a Cache. Zero values: no disk cache, a 10 s HTTP timeout,
// logs discarded, no load notifications.
type Options struct {
	Dir      string
	Client   *http.Client
	Logger   *slog.Logger
	OnLoaded func(avatar string) // called from a fetch goroutine
}

// NewCache makes a cache. Close stops its fetches.
func NewCache(opts Options) *Cache {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		dir: opts.Dir, client: opts.Client, log: opts.Logger, onLoaded: opts.OnLoaded,
		ctx: ctx, cancel: cancel,
		pics: map[string]image.Image{}, inflight: map[string]bool{}, failed: map[string]time.Time{},
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Close stops fetches in flight and waits for them.
func (c *Cache) Close() {
	c.cancel()
	c.wg.Wait()
}

// SetRelay sets the relay that uploaded pictures are fetched from (the address
// as the person typed it).
func (c *Cache) SetRelay(relay string) error {
	base, err := HTTPBase(relay)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.base = base
	c.failed = map[string]time.Time{}
	c.mu.Unlock()
	return nil
}

// Get returns the picture for ref, or nil when there is none (empty ref, an
// unknown built-in) or it is still being fetched.
func (c *Cache) Get(ref string) image.Image {
	if ref == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if img, ok := c.pics[ref]; ok {
		return img
	}
	kind, value, err := protocol.ParseAvatar(ref)
	if err != nil {
		c.pics[ref] = nil
		return nil
	}
	switch kind {
	case "builtin":
		data, ok := assets.BuiltinAvatar(value)
		if !ok {
			data, _ = assets.BuiltinAvatar(assets.DefaultAvatar)
		}
		img, err := decodeScaled(data)
		if err != nil {
			c.log.Warn("built-in avatar does not decode", "avatar", ref, "err", err)
		}
		c.pics[ref] = img
		return img
	case "sha256":
		if data, err := os.ReadFile(c.path(value)); err == nil {
			if img, err := decodeScaled(data); err == nil {
				c.pics[ref] = img
				return img
			}
		}
		c.fetchLocked(ref, value)
	}
	return nil
}

// Put stores a picture the person just uploaded, so it shows without a fetch.
func (c *Cache) Put(ref string, data []byte) {
	img, err := decodeScaled(data)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.pics[ref] = img
	c.mu.Unlock()
	if _, value, err := protocol.ParseAvatar(ref); err == nil && c.dir != "" {
		c.save(value, data)
	}
}

func (c *Cache) path(hex string) string {
	if c.dir == "" {
		return ""
	}
	return filepath.Join(c.dir, hex+".png")
}

// retryFailedAfter keeps a picture that failed to load from being fetched on
// every redraw.
const retryFailedAfter = time.Minute

func (c *Cache) fetchLocked(ref, hex string) {
	if c.inflight[ref] || c.base == "" || c.ctx.Err() != nil {
		return
	}
	if at, ok := c.failed[ref]; ok && time.Since(at) < retryFailedAfter {
		return
	}
	c.inflight[ref] = true
	base := c.base
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		data, err := c.download(base, hex)
		var img image.Image
		if err == nil {
			img, err = decodeScaled(data)
		}
		c.mu.Lock()
		delete(c.inflight, ref)
		if err != nil {
			c.failed[ref] = time.Now()
			c.mu.Unlock()
			if c.ctx.Err() == nil {
				c.log.Info("avatar not loaded", "avatar", ref, "err", err)
			}
			return
		}
		c.pics[ref] = img
		c.mu.Unlock()
		c.save(hex, data)
		if c.onLoaded != nil {
			c.onLoaded(ref)
		}
	}()
}

func (c *Cache) download(base, hex string) ([]byte, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, base+"/v1/avatars/"+hex, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("relay answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, avatar.MaxUpload+1))
	if err != nil {
		return nil, err
	}
	if len(data) > avatar.MaxUpload {
		return nil, errors.New("picture larger than 256 KiB")
	}
	if avatar.Hash(data) != hex {
		return nil, errors.New("picture does not match its name")
	}
	return data, nil
}

func (c *Cache) save(hex string, data []byte) {
	if c.dir == "" || !avatar.ValidHex(hex) {
		return
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return
	}
	tmp := c.path(hex) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err == nil {
		_ = os.Rename(tmp, c.path(hex))
	}
}

// decodeScaled decodes a PNG or JPEG (within the relay's own bounds, known
// from the header, so a picture bomb costs nothing) and scales it to DrawSize.
func decodeScaled(data []byte) (image.Image, error) {
	img, err := avatar.Decode(data)
	if err != nil {
		return nil, err
	}
	return avatar.Square(img, DrawSize), nil
}

// decodeChecked decodes a picture the person picked on this computer: the
// header's dimensions are checked first, within the generous bounds given.
func decodeChecked(data []byte, maxSide, maxPixels int) (image.Image, error) {
	var cfg image.Config
	var err error
	isPNG := bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n"))
	isJPEG := bytes.HasPrefix(data, []byte("\xff\xd8"))
	switch {
	case isPNG:
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	case isJPEG:
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
	default:
		return nil, errors.New("not a PNG or JPEG picture")
	}
	if err != nil {
		return nil, fmt.Errorf("the picture is damaged: %v", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxSide || cfg.Height > maxSide ||
		int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return nil, fmt.Errorf("the picture is too large (%dx%d pixels; at most %dx%d)", cfg.Width, cfg.Height, maxSide, maxSide)
	}
	if isPNG {
		return png.Decode(bytes.NewReader(data))
	}
	return jpeg.Decode(bytes.NewReader(data))
}

// MaxPickedFile is the largest picture file the person may pick (it is shrunk
// before upload).
const MaxPickedFile = 32 << 20

// Prepare turns a picture file the person picked (PNG or JPEG, any size up to
// MaxPickedFile and 8192 pixels a side) into a small square PNG the relay
// accepts.
func Prepare(data []byte) ([]byte, error) {
	if len(data) > MaxPickedFile {
		return nil, fmt.Errorf("the picture file is larger than %d MiB: choose a smaller one", MaxPickedFile>>20)
	}
	img, err := decodeChecked(data, 8192, 64<<20)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, avatar.Square(img, 2*avatar.Size)); err != nil {
		return nil, err
	}
	if buf.Len() > avatar.MaxUpload {
		buf.Reset()
		if err := png.Encode(&buf, avatar.Square(img, avatar.Size)); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// Upload sends a prepared PNG to the relay and returns the avatar reference it
// assigned ("sha256:<hex>"). token is the relay's access token, if any.
func Upload(ctx context.Context, client *http.Client, relay, token string, png []byte) (string, error) {
	base, err := HTTPBase(relay)
	if err != nil {
		return "", err
	}
	if client == nil {
		client = &http.Client{Timeout: 20 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/avatars", bytes.NewReader(png))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "image/png")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("could not reach the relay to upload the picture: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var out struct {
		Avatar  string `json:"avatar"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &out)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		msg := out.Message
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return "", fmt.Errorf("the relay refused the upload: check the access token (%s)", msg)
		}
		return "", fmt.Errorf("the relay refused the picture: %s (%s)", msg, resp.Status)
	}
	if kind, _, err := protocol.ParseAvatar(out.Avatar); err != nil || kind != "sha256" {
		return "", fmt.Errorf("the relay answered the upload with %q, not a picture reference", out.Avatar)
	}
	return out.Avatar, nil
}

// HTTPBase turns a relay address as typed ("host:port", "ws://host:port/ws",
// "wss://host/ws", "http(s)://host") into the base URL of its HTTP endpoints.
func HTTPBase(relay string) (string, error) {
	u, err := protocol.RelayURL(relay)
	if err != nil {
		return "", err
	}
	return protocol.RelayHTTPBase(u), nil
}
