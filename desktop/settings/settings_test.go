package settings

import (
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
)

func TestFirstRunDefaults(t *testing.T) {
	a := test.NewTempApp(t)
	got := New(a.Preferences()).Load()
	want := Profile{Room: "general", Avatar: "builtin:default", Notifications: true, Theme: ThemeSystem, HostPort: 7070}
	if got != want {
		t.Fatalf("first run:\n got %+v\nwant %+v", got, want)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	a := test.NewTempApp(t)
	s := New(a.Preferences())
	p := Profile{Relay: " 10.0.0.2:7070 ", Name: "Ada ", Room: "ops", Token: "t0k", Avatar: "builtin:fox",
		Notifications: false, Theme: ThemeDark, CloseToTray: true, Host: true, HostPort: 9000, AutoJoin: true}
	s.Save(p)
	got := New(a.Preferences()).Load()
	p.Relay, p.Name = "10.0.0.2:7070", "Ada" // trimmed on save
	if got != p {
		t.Fatalf("\n got %+v\nwant %+v", got, p)
	}
}

func TestBadStoredValuesFallBack(t *testing.T) {
	a := test.NewTempApp(t)
	a.Preferences().SetString(kTheme, "neon")
	a.Preferences().SetInt(kHostPort, 70000)
	got := New(a.Preferences()).Load()
	if got.Theme != ThemeSystem || got.HostPort != DefaultHostPort {
		t.Fatalf("%+v", got)
	}
}

func TestMemberKeyIsStablePerRelayAndRoom(t *testing.T) {
	a := test.NewTempApp(t)
	s := New(a.Preferences())
	n := 0
	gen := func() string { n++; return string(rune('a'+n)) + "-key-0123456789abcdef" }
	k1 := s.MemberKey("Relay:1", "general", gen)
	if k1 != s.MemberKey("relay:1", "general", gen) {
		t.Fatal("key changed for the same relay and room")
	}
	if k1 == s.MemberKey("relay:1", "other", gen) || k1 == s.MemberKey("relay:2", "general", gen) {
		t.Fatal("key shared between rooms or relays")
	}
	if n != 3 {
		t.Fatalf("generated %d keys, want 3", n)
	}
}

func TestResumePointPerRelayAndRoom(t *testing.T) {
	a := test.NewTempApp(t)
	s := New(a.Preferences())
	if _, ok := s.ResumePoint("relay:1", "general"); ok {
		t.Fatal("a resume point before any was saved")
	}
	s.SaveResumePoint("Relay:1 ", "general", ResumePoint{Epoch: "e1", LastSeq: 1 << 40})
	s.SaveResumePoint("relay:1", "other", ResumePoint{Epoch: "e2", LastSeq: 7})
	// A new Store over the same preferences: what the next app start sees.
	s = New(a.Preferences())
	if rp, ok := s.ResumePoint("relay:1", "general"); !ok || rp != (ResumePoint{Epoch: "e1", LastSeq: 1 << 40}) {
		t.Fatalf("general: %+v %v", rp, ok)
	}
	if rp, ok := s.ResumePoint("relay:1", "other"); !ok || rp != (ResumePoint{Epoch: "e2", LastSeq: 7}) {
		t.Fatalf("other: %+v %v", rp, ok)
	}
	if _, ok := s.ResumePoint("relay:2", "general"); ok {
		t.Fatal("resume point shared between relays")
	}
	s.SaveResumePoint("relay:1", "other", ResumePoint{})
	if _, ok := s.ResumePoint("relay:1", "other"); ok {
		t.Fatal("an empty point did not remove the saved one")
	}
	a.Preferences().SetString(kResumePrefix+"relay:1|bad", "{not json")
	if _, ok := s.ResumePoint("relay:1", "bad"); ok {
		t.Fatal("an unreadable saved point counted as a resume point")
	}
}

// The sidebar's rooms come back in the order saved, with their
// notification level; bad stored values read as something safe.
func TestRoomsRoundTripAndBadValues(t *testing.T) {
	a := test.NewTempApp(t)
	s := New(a.Preferences())
	if got := s.Rooms(); got != nil {
		t.Fatalf("first run rooms %+v, want none", got)
	}
	rs := []RoomEntry{
		{Relay: "10.0.0.2:7070", Room: "ops", Notify: NotifyMentions},
		{Room: "lan", Host: true},
		{Relay: "wss://chat.example.org/ws", Room: "general", Token: "t", Notify: NotifyNone},
	}
	s.SaveRooms(rs)
	s.SaveSelectedRoom(rs[2].Key())
	got := New(a.Preferences()).Rooms()
	rs[1].Notify = NotifyAll // an unset level reads as the default
	if len(got) != 3 || got[0] != rs[0] || got[1] != rs[1] || got[2] != rs[2] {
		t.Fatalf("rooms\n got %+v\nwant %+v", got, rs)
	}
	if s.SelectedRoom() != "wss://chat.example.org/ws|general" {
		t.Fatalf("selected %q", s.SelectedRoom())
	}

	a.Preferences().SetString(kRooms, `[{"room":"a","notify":"loud"},{"room":""},{"room":"a"}]`)
	if got := s.Rooms(); len(got) != 1 || got[0].Notify != NotifyAll {
		t.Fatalf("bad entries read as %+v, want one room at the default level", got)
	}
	a.Preferences().SetString(kRooms, `{not json`)
	if got := s.Rooms(); got != nil {
		t.Fatalf("unreadable rooms read as %+v", got)
	}

	if s.Retention() != KeepForever {
		t.Fatalf("default retention %q", s.Retention())
	}
	s.SaveRetention(KeepMonth)
	if s.Retention() != KeepMonth || KeepMonth.Age() != 30*24*time.Hour || KeepForever.Age() != 0 {
		t.Fatal("retention did not round-trip")
	}
	a.Preferences().SetString(kRetention, "7y")
	if s.Retention() != KeepForever {
		t.Fatal("unknown retention not read as forever")
	}
}

func TestMentionsAlwaysNotify(t *testing.T) {
	for _, c := range []struct {
		l       NotifyLevel
		mention bool
		want    bool
	}{{NotifyAll, false, true}, {NotifyMentions, false, false}, {NotifyMentions, true, true}, {NotifyNone, false, false}, {NotifyNone, true, true}} {
		if got := c.l.Notifies(c.mention); got != c.want {
			t.Errorf("%s mention=%v: %v", c.l, c.mention, got)
		}
	}
}
