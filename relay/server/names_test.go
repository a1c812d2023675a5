package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartline/heartline/shared/protocol"
)

// closeReason reads until the relay closes and returns the close code and
// reason (code -1 if the connection did not end in time).
func (c *tclient) closeReason(d time.Duration) (int, string) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := c.next(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		if errors.Is(err, errTimeout) {
			return -1, ""
		}
		return websocket.CloseAbnormalClosure, err.Error()
	}
}

// A name that looks like a present member's (another key) is refused like a
// taken name, 4501, saying which member it looks like; invisible names get
// bad_name and 4504.
func TestLookAlikeNamesRefused(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 10*time.Second, time.Minute // members stay while we try names
	tr := startRelay(t, cfg)
	tr.join("r1", "Alice", newKey())
	tr.join("r1", "Ian", newKey())
	tr.join("r1", "\u00c1ngel", newKey()) // precomposed Á

	refusedAs := func(name, want string) {
		t.Helper()
		c := tr.dial(nil)
		c.name = name
		c.hello("r1", name, newKey())
		code, reason := c.closeReason(3 * time.Second)
		if code != protocol.CloseNameTaken || !strings.Contains(reason, want) {
			t.Errorf("hello as %+q: close %d %q; want %d mentioning %q", name, code, reason, protocol.CloseNameTaken, want)
		}
	}
	refusedAs("\u0410lice", `looks like "Alice"`) // Cyrillic А
	refusedAs("\u0430lice", `looks like "Alice"`) // Cyrillic а
	refusedAs("lan", `looks like "Ian"`)          // small L for capital i
	refusedAs("\uff21lice", `"Alice" is taken`)   // fullwidth Ａ normalises to Alice
	refusedAs("A\u0301ngel", `"Ángel" is taken`)  // decomposed Á composes
	refusedAs("ALICE", `"ALICE" is taken`)        // case as before

	for _, name := range []string{"\u200b\u200b", "Alice\u200b", "\u3164", "\U000e0041\U000e0042", "\u0301"} {
		c := tr.dial(nil)
		c.name = name
		c.hello("r1", name, newKey())
		c.expectError(protocol.ErrBadName)
		c.expectClose(protocol.CloseHelloRefused)
	}

	// A name is stored and shown in its normal form, and a member may come
	// back under a look-alike of their own name.
	key := newKey()
	_, w := tr.join("r2", "\uff22ob", key)
	if w.You.Name != "Bob" {
		t.Errorf("fullwidth Ｂob joined as %+q, want %q", w.You.Name, "Bob")
	}
	_, w = tr.join("r2", "BOB", key)
	if w.You.Name != "BOB" || len(w.Members) != 1 {
		t.Errorf("the same member renamed to BOB: %+v", w)
	}

	// Genuinely different names and emoji names are still welcome.
	for _, name := range []string{"Anna", "Alicia", "李小龙", "family 👨\u200d👩\u200d👧", "Sam ❤\ufe0f"} {
		_, w := tr.join("r1", name, newKey())
		if w.You.Name != name {
			t.Errorf("joined as %+q, want %+q", w.You.Name, name)
		}
	}
}

// A member restored from the store after a restart (away) still holds their
// name against look-alikes.
func TestLookAlikeOfRestoredMemberRefused(t *testing.T) {
	cfg := fastConfig(t)
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = 10*time.Second, time.Minute
	cfg.Grace = time.Minute
	tr := startRelay(t, cfg)
	tr.join("s", "Ian", newKey())
	tr.stop()

	tr2 := startRelay(t, cfg)
	c := tr2.dial(nil)
	c.hello("s", "lan", newKey())
	if code, reason := c.closeReason(3 * time.Second); code != protocol.CloseNameTaken || !strings.Contains(reason, `looks like "Ian"`) {
		t.Fatalf("hello as lan after a restart: close %d %q; want 4501 saying it looks like Ian", code, reason)
	}
}
