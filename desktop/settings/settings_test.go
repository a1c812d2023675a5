package settings

import (
	"testing"

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
