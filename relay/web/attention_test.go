package web_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/heartline/heartline/relay/server"
)

// TestKeyboardUploadAndAttention: a person joins with the keyboard only and
// an uploaded picture; while the tab is hidden, new messages count in the
// title and raise notifications (once allowed); a member whose link drops
// shows as away.
func TestKeyboardUploadAndAttention(t *testing.T) {
	r := startRelay(t, server.Config{})
	eve := startEngine(t, r, "lobby", "Eve Desk")
	p := newPage(t, 1280, 800)
	c := chromedp.FromContext(p.ctx)
	if err := c.Browser.Call(p.ctx, cdpbrowser.CommandSetPermission, &cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted,
		Origin: r.base(), BrowserContextID: c.BrowserContextID,
	}, nil); err != nil {
		t.Fatalf("granting notifications: %v", err)
	}

	// A picture of one's own, through the relay's upload endpoint.
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var buf bytes.Buffer
	png.Encode(&buf, img)
	file := filepath.Join(t.TempDir(), "me.png")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	p.do(chromedp.Navigate(r.base()+"/r/lobby"), chromedp.WaitVisible(chromedp.ID("name")))
	p.do(chromedp.SetUploadFiles(chromedp.ID("avatar-file"), []string{file}))
	p.waitFor("the uploaded picture chosen", `(document.querySelector('input[name=avatar]:checked') || {}).value?.startsWith('sha256:')`)
	avatar := eval[string](p, `document.querySelector('input[name=avatar]:checked').value`)

	// Keyboard only: the name field has the focus; Enter joins; the message
	// box has the focus; Enter sends.
	if f := eval[string](p, `document.activeElement.id`); f != "name" {
		t.Fatalf("the join form opens with the focus on %q, want the name", f)
	}
	p.do(chromedp.KeyEvent("Keyboard Kim"), chromedp.KeyEvent("\r"))
	p.waitConnected()
	if f := eval[string](p, `document.activeElement.id`); f != "message" {
		t.Errorf("after joining the focus is on %q, want the message box", f)
	}
	p.do(chromedp.KeyEvent("typed, not clicked"), chromedp.KeyEvent("\r"))
	m := eve.received("typed, not clicked")
	if m.From.Avatar != avatar || m.From.Name != "Keyboard Kim" {
		t.Errorf("the engine sees the sender as %+v, want avatar %s", m.From, avatar)
	}
	p.waitFor("the uploaded picture in the member list", `!!document.querySelector('#member-list img[src="/v1/avatars/`+strings.TrimPrefix(avatar, "sha256:")+`"]')`)

	// Hidden tab: the page is told it is hidden, as a browser tells a
	// background tab; the unread count goes to the title, each message to
	// a notification.
	eval[bool](p, `(() => {
		window.notes = [];
		const Real = window.Notification;
		window.Notification = class extends Real { constructor(title, o) { super(title, o); notes.push(title + ': ' + o.body); } };
		Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
		document.dispatchEvent(new Event('visibilitychange'));
		return true;
	})()`)
	eve.c.Send("are you there?")
	eve.c.Send("second ping")
	p.waitFor("the unread count in the title", `document.title === '(2) #lobby · Heartline'`)
	if notes := eval[[]string](p, `notes`); len(notes) != 2 || notes[0] != "Eve Desk in #lobby: are you there?" {
		t.Errorf("notifications %q", notes)
	}
	eval[bool](p, `(() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false}); document.dispatchEvent(new Event('visibilitychange')); return true; })()`)
	p.waitFor("the title without a count", `document.title === '#lobby · Heartline'`)
	if n := eval[int](p, `[...document.querySelectorAll('#announce p')].filter(e => e.textContent === 'Eve Desk: second ping').length`); n != 1 {
		t.Errorf("the live log announced the message %d times, want once", n)
	}

	// Eve's link drops without bye: she stays, away.
	eve.stop()
	p.waitFor("Eve away", `[...document.querySelectorAll('#member-list .member.away .name')].some(e => e.textContent === 'Eve Desk')`)
}
