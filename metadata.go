// Package heartline carries the app metadata both binaries share: name, ID,
// version and build from FyneApp.toml (the one source of truth, embedded at
// build time) and the commit the binary was built from.
package heartline

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

//go:embed FyneApp.toml
var fyneAppTOML []byte

// Commit is the source revision, set at link time with
// `-ldflags "-X github.com/heartline/heartline.Commit=<rev>"`. When empty, the
// revision Go records for builds inside a git checkout is used instead.
var Commit string

// Metadata is what FyneApp.toml says about the app.
type Metadata struct {
	Name    string // person-facing name, "Heartline"
	ID      string // reverse-DNS app ID (Fyne preferences, desktop files, AppStream)
	Version string // semantic version, "0.1.0"
	Build   int    // build number; 0 when the file has none
	Icon    string // icon path relative to the repository root

	Website string

	// From [LinuxAndBSD]: what desktop entries and AppStream show. Empty
	// when the file has no such table.
	GenericName string
	Comment     string
	Categories  []string
	Keywords    []string

	// Migrations are Fyne opt-ins ([Migrations] fyneDo = true); pass them to
	// fyne's app.SetMetadata.
	Migrations map[string]bool
}

var embedded = sync.OnceValues(func() (Metadata, error) { return ParseMetadata(fyneAppTOML) })

// App returns the metadata embedded from FyneApp.toml. The file is checked by
// this package's tests, so a failure here is a build mistake and panics.
func App() Metadata {
	m, err := embedded()
	if err != nil {
		panic("heartline: embedded FyneApp.toml: " + err.Error())
	}
	m.Categories = append([]string(nil), m.Categories...)
	m.Keywords = append([]string(nil), m.Keywords...)
	migrations := make(map[string]bool, len(m.Migrations))
	for k, v := range m.Migrations {
		migrations[k] = v
	}
	m.Migrations = migrations
	return m
}

// Version is App().Version.
func Version() string { return App().Version }

// VersionString is the version with the commit it was built from, as both
// binaries print it for --version: "0.1.0 (abc1234)", "0.1.0 (abc1234,
// modified)" for a build from an edited checkout, or just "0.1.0" when the
// commit is unknown.
func VersionString() string {
	v := App().Version
	if c := commit(); c != "" {
		return v + " (" + c + ")"
	}
	return v
}

// commit returns the short revision from the linker flag or, failing that,
// from the build info Go stamps into binaries built in a git checkout.
func commit() string {
	if Commit != "" {
		return short(Commit)
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if modified {
		return short(rev) + ", modified"
	}
	return short(rev)
}

func short(rev string) string {
	if len(rev) > 7 && isHex(rev) {
		return rev[:7]
	}
	return rev
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

var (
	appIDPattern   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)+$`)
	versionPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)
)

// fyneAppFile is the part of FyneApp.toml Heartline reads, with the key
// names Fyne's own tooling uses for the same file.
type fyneAppFile struct {
	Website     string          `toml:"Website"`
	Details     fyneAppDetails  `toml:"Details"`
	LinuxAndBSD fyneAppDesktop  `toml:"LinuxAndBSD"`
	Migrations  map[string]bool `toml:"Migrations"`
}

type fyneAppDetails struct {
	Name    string `toml:"Name"`
	ID      string `toml:"ID"`
	Version string `toml:"Version"`
	Build   int    `toml:"Build"`
	Icon    string `toml:"Icon"`
}

type fyneAppDesktop struct {
	GenericName string   `toml:"GenericName"`
	Comment     string   `toml:"Comment"`
	Categories  []string `toml:"Categories"`
	Keywords    []string `toml:"Keywords"`
}

// ParseMetadata reads the FyneApp.toml keys Heartline uses with the TOML
// parser Fyne itself reads the file with, so both always agree. Errors name
// the line. Name, ID and Version are required; keys Heartline does not use
// are ignored.
func ParseMetadata(data []byte) (Metadata, error) {
	var f fyneAppFile
	if _, err := toml.Decode(string(data), &f); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Metadata{}, fmt.Errorf("FyneApp.toml:%d: %s", pe.Position.Line, pe.Message)
		}
		// A value of the wrong type: "toml: line 5 (last key ...): ...".
		return Metadata{}, errors.New("FyneApp.toml: " + strings.TrimPrefix(err.Error(), "toml: "))
	}
	d, l := f.Details, f.LinuxAndBSD
	m := Metadata{
		Name: d.Name, ID: d.ID, Version: d.Version, Build: d.Build, Icon: d.Icon,
		Website:     f.Website,
		GenericName: l.GenericName, Comment: l.Comment, Categories: l.Categories, Keywords: l.Keywords,
		Migrations: f.Migrations,
	}
	switch {
	case m.Name == "":
		return Metadata{}, errors.New(`FyneApp.toml: [Details] needs Name = "..."`)
	case !appIDPattern.MatchString(m.ID):
		return Metadata{}, fmt.Errorf(`FyneApp.toml: [Details] ID %q must be a reverse-DNS name like "chat.heartline.app"`, m.ID)
	case !versionPattern.MatchString(m.Version):
		return Metadata{}, fmt.Errorf(`FyneApp.toml: [Details] Version %q must be a semantic version like "1.2.3"`, m.Version)
	case m.Build < 0:
		return Metadata{}, fmt.Errorf("FyneApp.toml: [Details] Build %d must not be negative", m.Build)
	}
	return m, nil
}
