// Package settings keeps what the person chose (relay, name, room, avatar,
// notifications, theme...) in Fyne preferences, behind typed accessors so that
// no other code spells a preference key.
package settings

import (
	"encoding/json"
	"strings"

	"fyne.io/fyne/v2"

	"github.com/heartline/heartline/shared/client"
)

// Theme is the colour scheme the person picked.
type Theme string

const (
	ThemeSystem Theme = "system" // follow the desktop
	ThemeLight  Theme = "light"
	ThemeDark   Theme = "dark"
)

// Themes lists the choices in the order a settings screen offers them.
var Themes = []Theme{ThemeSystem, ThemeLight, ThemeDark}

// DefaultRoom is the room a first run suggests.
const DefaultRoom = "general"

// DefaultHostPort is the port "Host a room on this computer" listens on.
const DefaultHostPort = 7070

// Profile is everything the join and settings screens edit.
type Profile struct {
	Relay  string // relay address as typed: "host:port", "ws://host:port/ws", "wss://..."
	Name   string
	Room   string
	Token  string // the relay's access token, if it has one
	Avatar string // "builtin:<name>", "sha256:<hex>" or "" (initials)

	Notifications bool  // desktop notification for new messages while unfocused
	Theme         Theme // system, light or dark
	CloseToTray   bool  // closing the window hides it to the system tray

	// Host: the app runs a relay itself and joins it.
	Host     bool
	HostPort int
	// HostToken is the hosted room's access token, made once and kept, so
	// the invite the host shared stays valid across restarts ("" until the
	// first time this computer hosts).
	HostToken string

	// AutoJoin: the person has joined before; start in the room, not on the join screen.
	AutoJoin bool
}

// Store reads and writes a Profile and the per-room member keys.
type Store struct{ p fyne.Preferences }

// New wraps an app's preferences.
func New(p fyne.Preferences) *Store { return &Store{p: p} }

const (
	kRelay         = "relay"
	kName          = "name"
	kRoom          = "room"
	kToken         = "token"
	kAvatar        = "avatar"
	kNotifications = "notifications"
	kTheme         = "theme"
	kCloseToTray   = "close_to_tray"
	kHost          = "host"
	kHostPort      = "host_port"
	kHostToken     = "host_token"
	kAutoJoin      = "auto_join"
	kKeyPrefix     = "member_key:"
	kResumePrefix  = "resume:"
)

// Load returns the stored profile; on a first run: room "general", the
// built-in default avatar, notifications on, system theme, host port 7070.
func (s *Store) Load() Profile {
	th := Theme(s.p.StringWithFallback(kTheme, string(ThemeSystem)))
	switch th {
	case ThemeSystem, ThemeLight, ThemeDark:
	default:
		th = ThemeSystem
	}
	port := s.p.IntWithFallback(kHostPort, DefaultHostPort)
	if port <= 0 || port > 65535 {
		port = DefaultHostPort
	}
	return Profile{
		Relay:         s.p.String(kRelay),
		Name:          s.p.String(kName),
		Room:          s.p.StringWithFallback(kRoom, DefaultRoom),
		Token:         s.p.String(kToken),
		Avatar:        s.p.StringWithFallback(kAvatar, "builtin:default"),
		Notifications: s.p.BoolWithFallback(kNotifications, true),
		Theme:         th,
		CloseToTray:   s.p.Bool(kCloseToTray),
		Host:          s.p.Bool(kHost),
		HostPort:      port,
		HostToken:     s.p.String(kHostToken),
		AutoJoin:      s.p.Bool(kAutoJoin),
	}
}

// Save stores the whole profile.
func (s *Store) Save(pr Profile) {
	s.p.SetString(kRelay, strings.TrimSpace(pr.Relay))
	s.p.SetString(kName, strings.TrimSpace(pr.Name))
	s.p.SetString(kRoom, strings.TrimSpace(pr.Room))
	s.p.SetString(kToken, pr.Token)
	s.p.SetString(kAvatar, pr.Avatar)
	s.p.SetBool(kNotifications, pr.Notifications)
	s.p.SetString(kTheme, string(pr.Theme))
	s.p.SetBool(kCloseToTray, pr.CloseToTray)
	s.p.SetBool(kHost, pr.Host)
	s.p.SetInt(kHostPort, pr.HostPort)
	s.p.SetString(kHostToken, pr.HostToken)
	s.p.SetBool(kAutoJoin, pr.AutoJoin)
}

// MemberKey returns this installation's secret key for a room on a relay,
// making and storing one the first time. Whoever holds the key is the member,
// so it is per relay and room, never shared between them.
func (s *Store) MemberKey(relay, room string, newKey func() string) string {
	k := kKeyPrefix + roomKey(relay, room)
	if v := s.p.String(k); v != "" {
		return v
	}
	v := newKey()
	s.p.SetString(k, v)
	return v
}

// roomKey names one room on one relay the way the person would, as the
// outbox file's name does (client.RoomFile).
func roomKey(relay, room string) string { return client.RoomKey(relay, room) }

// ResumePoint is where the person's view of a room ended: the room's epoch
// and the highest seq up to which they had every message. The zero value
// means nothing is known (join fresh).
type ResumePoint struct {
	Epoch   string `json:"epoch"`
	LastSeq uint64 `json:"last_seq"`
}

// ResumePoint returns the saved resume point for a room on a relay; ok is
// false when none is saved (or what is saved is unreadable, which is
// treated the same: the app then joins fresh).
func (s *Store) ResumePoint(relay, room string) (rp ResumePoint, ok bool) {
	v := s.p.String(kResumePrefix + roomKey(relay, room))
	if v == "" {
		return ResumePoint{}, false
	}
	if err := json.Unmarshal([]byte(v), &rp); err != nil || rp.Epoch == "" {
		return ResumePoint{}, false
	}
	return rp, true
}

// SaveResumePoint keeps rp for a room on a relay, next to its member key. A
// point without an epoch removes what is saved.
func (s *Store) SaveResumePoint(relay, room string, rp ResumePoint) {
	k := kResumePrefix + roomKey(relay, room)
	if rp.Epoch == "" {
		s.p.RemoveValue(k)
		return
	}
	b, _ := json.Marshal(rp) // two plain fields: cannot fail
	s.p.SetString(k, string(b))
}
