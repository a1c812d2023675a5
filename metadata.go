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
	"strconv"
	"strings"
	"sync"
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

// ParseMetadata reads the FyneApp.toml keys Heartline uses. It understands
// the TOML that file needs (tables, comments, strings, integers, booleans,
// one-line arrays) and refuses the rest with an error naming the line, rather
// than guessing. Name, ID and Version are required.
func ParseMetadata(data []byte) (Metadata, error) {
	doc, err := parseTOML(data)
	if err != nil {
		return Metadata{}, err
	}
	var m Metadata
	var errs []error
	get := func(table, key string, dst any) {
		v, ok := doc[table][key]
		if !ok {
			return
		}
		where := key
		if table != "" {
			where = table + "." + key
		}
		var good bool
		switch d := dst.(type) {
		case *string:
			*d, good = v.(string)
		case *int:
			var n int64
			n, good = v.(int64)
			*d = int(n)
		case *[]string:
			*d, good = stringList(v)
		}
		if !good {
			errs = append(errs, fmt.Errorf("FyneApp.toml: %s has the wrong type (%T)", where, v))
		}
	}
	get("", "Website", &m.Website)
	get("Details", "Name", &m.Name)
	get("Details", "ID", &m.ID)
	get("Details", "Version", &m.Version)
	get("Details", "Build", &m.Build)
	get("Details", "Icon", &m.Icon)
	get("LinuxAndBSD", "GenericName", &m.GenericName)
	get("LinuxAndBSD", "Comment", &m.Comment)
	get("LinuxAndBSD", "Categories", &m.Categories)
	get("LinuxAndBSD", "Keywords", &m.Keywords)
	for k, v := range doc["Migrations"] {
		b, ok := v.(bool)
		if !ok {
			errs = append(errs, fmt.Errorf("FyneApp.toml: Migrations.%s must be true or false", k))
			continue
		}
		if m.Migrations == nil {
			m.Migrations = map[string]bool{}
		}
		m.Migrations[k] = b
	}
	switch {
	case m.Name == "":
		errs = append(errs, errors.New(`FyneApp.toml: [Details] needs Name = "..."`))
	case !appIDPattern.MatchString(m.ID):
		errs = append(errs, fmt.Errorf(`FyneApp.toml: [Details] ID %q must be a reverse-DNS name like "chat.heartline.app"`, m.ID))
	case !versionPattern.MatchString(m.Version):
		errs = append(errs, fmt.Errorf(`FyneApp.toml: [Details] Version %q must be a semantic version like "1.2.3"`, m.Version))
	case m.Build < 0:
		errs = append(errs, fmt.Errorf("FyneApp.toml: [Details] Build %d must not be negative", m.Build))
	}
	if err := errors.Join(errs...); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

func stringList(v any) ([]string, bool) {
	items, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// parseTOML parses the TOML subset into table name -> key -> value, where a
// value is a string, int64, bool or []any. The root table is "".
func parseTOML(data []byte) (map[string]map[string]any, error) {
	doc := map[string]map[string]any{"": {}}
	table := ""
	text := strings.TrimPrefix(string(data), "\ufeff")
	for i, line := range strings.Split(text, "\n") {
		p := &lineParser{s: strings.TrimSuffix(line, "\r"), line: i + 1}
		p.skipSpace()
		if p.done() || p.peek() == '#' {
			continue
		}
		if p.peek() == '[' {
			name, err := p.header()
			if err != nil {
				return nil, err
			}
			if _, dup := doc[name]; dup {
				return nil, p.errorf("table [%s] is defined twice", name)
			}
			doc[name] = map[string]any{}
			table = name
			continue
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.done() || p.peek() != '=' {
			return nil, p.errorf("expected = after key %q", key)
		}
		p.pos++
		p.skipSpace()
		val, err := p.value()
		if err != nil {
			return nil, err
		}
		if err := p.end(); err != nil {
			return nil, err
		}
		if _, dup := doc[table][key]; dup {
			return nil, p.errorf("key %q is defined twice", key)
		}
		doc[table][key] = val
	}
	return doc, nil
}

type lineParser struct {
	s    string
	pos  int
	line int
}

func (p *lineParser) errorf(format string, args ...any) error {
	return fmt.Errorf("FyneApp.toml:%d: %s", p.line, fmt.Sprintf(format, args...))
}

func (p *lineParser) done() bool { return p.pos >= len(p.s) }
func (p *lineParser) peek() byte { return p.s[p.pos] }

func (p *lineParser) skipSpace() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
}

// end accepts only trailing spaces and a comment.
func (p *lineParser) end() error {
	p.skipSpace()
	if !p.done() && p.peek() != '#' {
		return p.errorf("unexpected %q after the value", p.s[p.pos:])
	}
	return nil
}

func isBare(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func (p *lineParser) key() (string, error) {
	if p.peek() == '"' {
		return p.basicString()
	}
	start := p.pos
	for !p.done() && isBare(p.peek()) {
		p.pos++
	}
	if p.pos == start {
		return "", p.errorf("expected a key, found %q", p.s[p.pos:])
	}
	if !p.done() && p.peek() == '.' {
		return "", p.errorf("dotted keys are not supported here; use a [table]")
	}
	return p.s[start:p.pos], nil
}

func (p *lineParser) header() (string, error) {
	p.pos++ // [
	if !p.done() && p.peek() == '[' {
		return "", p.errorf("arrays of tables ([[...]]) are not supported here")
	}
	p.skipSpace()
	name, err := p.key()
	if err != nil {
		return "", err
	}
	p.skipSpace()
	if p.done() || p.peek() != ']' {
		return "", p.errorf("table header [%s needs a closing ]", name)
	}
	p.pos++
	return name, p.end()
}

func (p *lineParser) value() (any, error) {
	if p.done() {
		return nil, p.errorf("missing value after =")
	}
	switch c := p.peek(); {
	case strings.HasPrefix(p.s[p.pos:], `"""`) || strings.HasPrefix(p.s[p.pos:], "'''"):
		return nil, p.errorf("multi-line strings are not supported here")
	case c == '"':
		return p.basicString()
	case c == '\'':
		end := strings.IndexByte(p.s[p.pos+1:], '\'')
		if end < 0 {
			return nil, p.errorf("string is missing its closing '")
		}
		s := p.s[p.pos+1 : p.pos+1+end]
		p.pos += end + 2
		return s, nil
	case c == '[':
		return p.array()
	case c == '{':
		return nil, p.errorf("inline tables are not supported here")
	default:
		start := p.pos
		for !p.done() && p.peek() != ' ' && p.peek() != '\t' && p.peek() != '#' && p.peek() != ',' && p.peek() != ']' {
			p.pos++
		}
		word := p.s[start:p.pos]
		switch word {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(word, "_", ""), 10, 64)
		if err != nil || strings.HasPrefix(word, "_") || strings.HasSuffix(word, "_") || strings.Contains(word, "__") {
			return nil, p.errorf("value %q is not a string, integer, boolean or array (strings need quotes)", word)
		}
		return n, nil
	}
}

func (p *lineParser) array() ([]any, error) {
	p.pos++ // [
	items := []any{}
	for {
		p.skipSpace()
		if p.done() {
			return nil, p.errorf("array is missing its closing ] (arrays must fit on one line here)")
		}
		if p.peek() == ']' {
			p.pos++
			return items, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if _, nested := v.([]any); nested {
			return nil, p.errorf("nested arrays are not supported here")
		}
		items = append(items, v)
		p.skipSpace()
		if !p.done() && p.peek() == ',' {
			p.pos++
			continue
		}
		if p.done() || p.peek() != ']' {
			return nil, p.errorf("array items must be separated by commas")
		}
	}
}

func (p *lineParser) basicString() (string, error) {
	var b strings.Builder
	p.pos++ // opening quote
	for !p.done() {
		c := p.peek()
		p.pos++
		switch {
		case c == '"':
			return b.String(), nil
		case c == '\\':
			if p.done() {
				return "", p.errorf("string ends in a lone backslash")
			}
			e := p.peek()
			p.pos++
			switch e {
			case '"', '\\':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u', 'U':
				n := 4
				if e == 'U' {
					n = 8
				}
				if p.pos+n > len(p.s) {
					return "", p.errorf(`\%c escape needs %d hex digits`, e, n)
				}
				r, err := strconv.ParseUint(p.s[p.pos:p.pos+n], 16, 32)
				if err != nil || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF) {
					return "", p.errorf(`bad \%c escape %q`, e, p.s[p.pos:p.pos+n])
				}
				b.WriteRune(rune(r))
				p.pos += n
			default:
				return "", p.errorf(`unknown escape \%c in string`, e)
			}
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", p.errorf("control character %#x in string", c)
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf(`string is missing its closing "`)
}
