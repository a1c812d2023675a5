package chatview

import (
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

func TestDayLabel(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 30, 0, 0, utc) // a Saturday
	cases := []struct {
		day  time.Time
		want string
	}{
		{time.Date(2026, 11, 21, 0, 0, 1, 0, utc), "Today"},
		{time.Date(2026, 11, 20, 23, 59, 0, 0, utc), "Yesterday"},
		{time.Date(2026, 11, 19, 12, 0, 0, 0, utc), "Thursday"},
		{time.Date(2026, 11, 15, 12, 0, 0, 0, utc), "Sunday"},
		{time.Date(2026, 11, 14, 12, 0, 0, 0, utc), "Saturday 14 November"},
		{time.Date(2025, 12, 31, 12, 0, 0, 0, utc), "31 December 2025"},
	}
	for _, c := range cases {
		if got := DayLabel(c.day, now); got != c.want {
			t.Errorf("DayLabel(%s) = %q, want %q", c.day, got, c.want)
		}
	}
}

func TestDayLabelAcrossDaylightSaving(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	now := time.Date(2026, 3, 30, 8, 0, 0, 0, loc) // the Monday after the clocks went forward
	if got := DayLabel(time.Date(2026, 3, 29, 1, 0, 0, 0, loc), now); got != "Yesterday" {
		t.Fatalf("got %q, want Yesterday", got)
	}
}

func TestTimeTexts(t *testing.T) {
	at := time.Date(2026, 11, 21, 14, 5, 9, 0, utc)
	if ShortTime(at) != "14:05" {
		t.Error(ShortTime(at))
	}
	if FullTime(at) != "Saturday 21 November 2026, 14:05:09" {
		t.Error(FullTime(at))
	}
}

func TestStatusLine(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		l    Link
		want string
		tone Tone
	}{
		{Link{Phase: PhaseConnected, RTT: 23 * time.Millisecond}, "Connected · 23 ms", ToneOK},
		{Link{Phase: PhaseConnected}, "Connected", ToneOK},
		{Link{Phase: PhaseConnecting}, "Connecting…", ToneBusy},
		{Link{Phase: PhaseReconnecting, NextTry: now.Add(3200 * time.Millisecond)}, "Reconnecting in 4 s", ToneWarning},
		{Link{Phase: PhaseReconnecting, NextTry: now.Add(-time.Second)}, "Reconnecting…", ToneWarning},
		{Link{Phase: PhaseStopped}, "Disconnected", ToneError},
	}
	for _, c := range cases {
		got, tone := StatusLine(c.l, now)
		if got != c.want || tone != c.tone {
			t.Errorf("StatusLine(%+v) = %q/%d, want %q/%d", c.l, got, tone, c.want, c.tone)
		}
	}
}

func TestBannerBeforeFirstConnectionSaysCannotReach(t *testing.T) {
	g := BannerGate{Grace: time.Second}
	now := time.Unix(1000, 0)
	l := Link{Phase: PhaseReconnecting, NextTry: now.Add(5 * time.Second), LastError: "refused"}
	g.Banner(l, now)
	b, _ := g.Banner(l, now.Add(1500*time.Millisecond))
	if !b.Show || !strings.HasPrefix(b.Text, "Cannot reach the relay (refused). Trying again in 4 s.") || b.Action != ActionRetryNow {
		t.Fatalf("%+v", b)
	}
}

func TestBannerWaitsForGrace(t *testing.T) {
	g := BannerGate{Grace: 1500 * time.Millisecond}
	now := time.Unix(1000, 0)
	if b, _ := g.Banner(Link{Phase: PhaseConnected}, now); b.Show {
		t.Fatal("banner while connected")
	}
	drop := Link{Phase: PhaseReconnecting, NextTry: now.Add(4 * time.Second), LastError: "heartbeat timeout"}
	b, again := g.Banner(drop, now)
	if b.Show || again != 1500*time.Millisecond {
		t.Fatalf("at the drop: show=%v again=%v, want hidden, ask again in 1.5 s", b.Show, again)
	}
	// A blip: connected again within the grace, nothing ever showed.
	if b, _ := g.Banner(Link{Phase: PhaseConnected}, now.Add(time.Second)); b.Show {
		t.Fatal("banner after a blip")
	}
	// A real drop: shows once the grace has passed, with a countdown and Retry now.
	drop.NextTry = now.Add(6 * time.Second)
	g.Banner(drop, now.Add(2*time.Second))
	b, again = g.Banner(drop, now.Add(3600*time.Millisecond))
	if !b.Show || b.Action != ActionRetryNow || again != time.Second {
		t.Fatalf("after grace: %+v again=%v", b, again)
	}
	want := "Connection lost (heartbeat timeout). Reconnecting in 3 s."
	if !strings.HasPrefix(b.Text, want) {
		t.Fatalf("text %q, want prefix %q", b.Text, want)
	}
	if b.Action.Label() != "Retry now" {
		t.Fatal(b.Action.Label())
	}
}

func TestBannerStopShowsAtOnceWithWhatToDo(t *testing.T) {
	var g BannerGate
	now := time.Unix(1000, 0)
	b, _ := g.Banner(Link{Phase: PhaseStopped, CloseCode: protocol.CloseNameTaken, StopReason: "The name is taken in this room: choose another name."}, now)
	if !b.Show || b.Tone != ToneError || b.Action != ActionOpenSettings {
		t.Fatalf("name taken: %+v", b)
	}
	if b.Text != "Disconnected: The name is taken in this room: choose another name." {
		t.Fatal(b.Text)
	}
	b, _ = g.Banner(Link{Phase: PhaseStopped, CloseCode: protocol.CloseReplaced, StopReason: "Opened elsewhere."}, now)
	if b.Action != ActionReconnect {
		t.Fatalf("replaced: %+v", b)
	}
}

func TestScrollFollowsOnlyAtBottom(t *testing.T) {
	var s Scroll
	if !s.Arrived(false) || s.ShowJump() {
		t.Fatal("at bottom: should follow, no jump control")
	}
	s.Scrolled(false) // reading older messages
	for i := 0; i < 3; i++ {
		if s.Arrived(false) {
			t.Fatal("followed while scrolled up")
		}
	}
	if !s.ShowJump() || s.NewBelow() != 3 || JumpLabel(s.NewBelow()) != "Jump to latest (3 new)" {
		t.Fatalf("jump: show=%v n=%d", s.ShowJump(), s.NewBelow())
	}
	s.Scrolled(true)
	if s.ShowJump() || s.NewBelow() != 0 {
		t.Fatal("back at bottom: jump control should go away")
	}
	s.Scrolled(false)
	s.Arrived(false)
	if !s.Arrived(true) || s.ShowJump() {
		t.Fatal("sending should bring the person to the bottom")
	}
	if JumpLabel(0) != "Jump to latest" || JumpLabel(1) != "Jump to latest (1 new)" {
		t.Fatal(JumpLabel(0), JumpLabel(1))
	}
}

func TestUnreadCountAndTitle(t *testing.T) {
	var u Unread
	u.Arrived(false)
	if u.Count() != 0 {
		t.Fatal("counted while focused")
	}
	u.Focus(false)
	u.Arrived(false)
	u.Arrived(true) // own messages never count
	u.Arrived(false)
	if u.Count() != 2 || WindowTitle("Heartline", "general", u.Count()) != "(2) #general - Heartline" {
		t.Fatalf("count %d title %q", u.Count(), WindowTitle("Heartline", "general", u.Count()))
	}
	u.Focus(true)
	if u.Count() != 0 || WindowTitle("Heartline", "general", 0) != "#general - Heartline" {
		t.Fatal("focus should clear the count")
	}
	if WindowTitle("Heartline", "", 0) != "Heartline" {
		t.Fatal(WindowTitle("Heartline", "", 0))
	}
}

func TestNotifierCoalesces(t *testing.T) {
	n := Notifier{Enabled: true, Quiet: 3 * time.Second}
	now := time.Unix(1000, 0)
	got, ok := n.Arrived("general", "Alice", "hello\nthere", now)
	if !ok || got.Title != "Alice in #general" || got.Body != "hello there" {
		t.Fatalf("first: %+v %v", got, ok)
	}
	if _, ok := n.Arrived("general", "Bob", "x", now.Add(time.Second)); ok {
		t.Fatal("second within quiet period notified")
	}
	got, ok = n.Arrived("general", "Bob", "y", now.Add(4*time.Second))
	if !ok || got.Body != "2 new messages, the latest from Bob: y" {
		t.Fatalf("coalesced: %+v %v", got, ok)
	}
	off := Notifier{}
	if _, ok := off.Arrived("g", "A", "x", now); ok {
		t.Fatal("disabled notifier notified")
	}
}

func TestRoster(t *testing.T) {
	var r Roster
	r.Reset([]protocol.Member{
		{ID: "1", Name: "zoe", State: protocol.StateOnline},
		{ID: "2", Name: "Adam", State: protocol.StateAway},
		{ID: "3", Name: "bea", State: protocol.StateOnline},
	})
	names := func() string {
		var s []string
		for _, m := range r.Sorted() {
			s = append(s, m.Name)
		}
		return strings.Join(s, ",")
	}
	if names() != "bea,zoe,Adam" || r.CountText() != "3 members · 2 online" {
		t.Fatalf("%s / %s", names(), r.CountText())
	}
	r.Put(protocol.Member{ID: "2", Name: "Adam", State: protocol.StateOnline})
	r.Put(protocol.Member{ID: "4", Name: "Carl", State: protocol.StateOnline})
	if names() != "Adam,bea,Carl,zoe" || r.CountText() != "4 members online" {
		t.Fatalf("%s / %s", names(), r.CountText())
	}
	r.Remove("1")
	r.Remove("3")
	r.Remove("4")
	if r.CountText() != "1 member online" {
		t.Fatal(r.CountText())
	}
}

func TestInitialsAndColour(t *testing.T) {
	for in, want := range map[string]string{
		"Ada Lovelace": "AL", "bob": "B", "  jean-luc picard ": "JP", "李雷": "李", "🙂": "🙂", "": "?", "x.y.z": "XY",
	} {
		if got := Initials(in); got != want {
			t.Errorf("Initials(%q) = %q, want %q", in, got, want)
		}
	}
	if AvatarColor("Alice") != AvatarColor(" alice ") {
		t.Error("colour depends on case or spaces")
	}
	seen := map[any]bool{}
	for _, n := range []string{"Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi"} {
		seen[AvatarColor(n)] = true
	}
	if len(seen) < 4 {
		t.Errorf("8 names share only %d colours", len(seen))
	}
}

func TestSplitLinks(t *testing.T) {
	segs := SplitLinks("see https://example.org/a_(b). and www.go.dev, ok")
	var parts []string
	for _, s := range segs {
		if s.URL != nil {
			parts = append(parts, "<"+s.Text+"="+s.URL.String()+">")
		} else {
			parts = append(parts, s.Text)
		}
	}
	got := strings.Join(parts, "")
	want := "see <https://example.org/a_(b)=https://example.org/a_(b)>. and <www.go.dev=https://www.go.dev>, ok"
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if segs := SplitLinks("(see http://x.org/page)"); len(segs) != 3 || segs[1].Text != "http://x.org/page" {
		t.Fatalf("%+v", segs)
	}
	if segs := SplitLinks("no links here"); len(segs) != 1 || segs[0].URL != nil {
		t.Fatalf("%+v", segs)
	}
	if HasLinks("plain") || !HasLinks("go to https://a.b") {
		t.Fatal("HasLinks")
	}
}

func TestExcerpt(t *testing.T) {
	if got := Excerpt("abcdef", 4); got != "abc…" {
		t.Fatal(got)
	}
	if got := Excerpt("äöü", 3); got != "äöü" {
		t.Fatal(got)
	}
}

func TestSteadyRTTIgnoresJitter(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct{ shown, measured, want time.Duration }{
		{0, 23 * ms, 23 * ms},
		{23 * ms, 24 * ms, 23 * ms},
		{23 * ms, 21 * ms, 23 * ms},
		{23 * ms, 30 * ms, 30 * ms},
		{100 * ms, 119 * ms, 100 * ms},
		{100 * ms, 121 * ms, 121 * ms},
		{100 * ms, 79 * ms, 79 * ms},
		{500 * time.Microsecond, 2 * ms, 500 * time.Microsecond},
		{500 * time.Microsecond, 3 * ms, 3 * ms},
		{40 * ms, 0, 0},
	} {
		if got := SteadyRTT(c.shown, c.measured); got != c.want {
			t.Errorf("SteadyRTT(%v, %v) = %v, want %v", c.shown, c.measured, got, c.want)
		}
	}
}
