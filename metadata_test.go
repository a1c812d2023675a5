package heartline

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heartline/heartline/assets"
)

func TestEmbeddedMetadata(t *testing.T) {
	m := App()
	if m.Name != "Heartline" || m.ID != "chat.heartline.app" {
		t.Errorf("name/ID = %q/%q", m.Name, m.ID)
	}
	if !versionPattern.MatchString(m.Version) || m.Build < 1 {
		t.Errorf("version %q build %d", m.Version, m.Build)
	}
	if !m.Migrations["fyneDo"] {
		t.Error("[Migrations] fyneDo must be true: the desktop uses fyne.Do and relies on the migrated threading model")
	}
	if m.Comment == "" || !slices.Contains(m.Categories, "Network") {
		t.Errorf("[LinuxAndBSD] comment %q categories %v: desktop entries need both", m.Comment, m.Categories)
	}
	// The same file on disk is what Fyne and the packaging scripts read.
	disk, err := os.ReadFile("FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, fyneAppTOML) {
		t.Fatal("embedded FyneApp.toml differs from the file on disk")
	}
	// The icon the toml names is the icon the assets package embeds.
	icon, err := os.ReadFile(filepath.FromSlash(m.Icon))
	if err != nil {
		t.Fatalf("FyneApp.toml Icon %q: %v", m.Icon, err)
	}
	if !bytes.Equal(icon, assets.Icon()) {
		t.Errorf("FyneApp.toml Icon %q is not assets.Icon()", m.Icon)
	}
}

func TestAppReturnsCopies(t *testing.T) {
	m := App()
	m.Migrations["fyneDo"] = false
	m.Categories[0] = "Game"
	if n := App(); !n.Migrations["fyneDo"] || n.Categories[0] == "Game" {
		t.Fatal("App() shares its maps or slices with callers")
	}
}

// Shell tools (the Makefile, scripts/dist.sh) read the version with sed, so
// the file must keep Version on one line of its own, and sed must agree with
// the parser.
func TestVersionReadableBySed(t *testing.T) {
	re := regexp.MustCompile(`(?m)^Version *= *"(.*)"\r?$`)
	all := re.FindAllSubmatch(fyneAppTOML, -1)
	if len(all) != 1 {
		t.Fatalf("want exactly one line `Version = \"...\"`, found %d", len(all))
	}
	if got := string(all[0][1]); got != App().Version {
		t.Fatalf("sed would read %q, the parser reads %q", got, App().Version)
	}
}

func TestParseMetadataEdgeCases(t *testing.T) {
	src := "\ufeff# leading comment\r\n" +
		"Website = 'https://example.org/a\\b'   # literal string keeps the backslash\r\n" +
		"\r\n" +
		"[ Details ]\r\n" +
		"\"Name\" = \"Heart\\u2764line \\\"beta\\\"\"\r\n" +
		"ID=\"org.example.heart-line\"\r\n" +
		"Version = \"1.20.3-rc.1\"\t# trailing comment\r\n" +
		"Build = 1_002\r\n" +
		"[Unknown]\n" +
		"anything = [1, \"two\", true]\n" +
		"[LinuxAndBSD]\n" +
		"Categories = [ \"Network\" , \"Chat\", ]\n" +
		"Keywords = []\n" +
		"[Migrations]\n" +
		"fyneDo = false\n"
	m, err := ParseMetadata([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := Metadata{
		Name: "Heart\u2764line \"beta\"", ID: "org.example.heart-line", Version: "1.20.3-rc.1", Build: 1002,
		Website: `https://example.org/a\b`, Categories: []string{"Network", "Chat"}, Keywords: []string{},
		Migrations: map[string]bool{"fyneDo": false},
	}
	if m.Name != want.Name || m.ID != want.ID || m.Version != want.Version || m.Build != want.Build ||
		m.Website != want.Website || !slices.Equal(m.Categories, want.Categories) || len(m.Keywords) != 0 ||
		len(m.Migrations) != 1 || m.Migrations["fyneDo"] {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
}

// Errors name the line (syntax) or the key (type) and say what is wrong.
// The syntax messages are the TOML parser's; the checks after parsing are
// Heartline's own.
func TestParseMetadataErrors(t *testing.T) {
	const ok = "[Details]\nName = \"A\"\nID = \"a.b\"\nVersion = \"1.0.0\"\n"
	cases := []struct{ name, src, want string }{
		{"unterminated string", "[Details]\nName = \"Heartline\n", "FyneApp.toml:2: strings cannot contain newlines"},
		{"no equals", "[Details]\nName \"x\"\n", "FyneApp.toml:2: expected '.' or '='"},
		{"bare word", "[Details]\nName = Heartline\n", `FyneApp.toml:2: expected value but found "Heartline"`},
		{"duplicate key", ok + "Name = \"B\"\n", "FyneApp.toml:5: Key 'Details.Name' has already been defined"},
		{"duplicate table", ok + "[Details]\n", "FyneApp.toml:5: Key 'Details' has already been defined"},
		{"header unclosed", "[Details\n", "to end table name"},
		{"junk after value", "[Details]\nBuild = 1 2\n", "FyneApp.toml:2: expected a top-level item to end with a newline, comment, or EOF, but got '2'"},
		{"array of tables", "[[Details]]\n", `FyneApp.toml: line 1 (last key "Details"): type mismatch`},
		{"bad escape", "Website = \"a\\qb\"\n", `FyneApp.toml:1: invalid escape in string '\q'`},
		{"bad int", "[Details]\nBuild = 1__0\n", `FyneApp.toml:2: Invalid integer "1__0"`},
		{"missing name", "[Details]\nID = \"a.b\"\nVersion = \"1.0.0\"\n", `FyneApp.toml: [Details] needs Name = "..."`},
		{"bad id", "[Details]\nName = \"A\"\nID = \"heartline\"\nVersion = \"1.0.0\"\n", `FyneApp.toml: [Details] ID "heartline" must be a reverse-DNS name like "chat.heartline.app"`},
		{"bad version", "[Details]\nName = \"A\"\nID = \"a.b\"\nVersion = \"v1.0\"\n", `FyneApp.toml: [Details] Version "v1.0" must be a semantic version like "1.2.3"`},
		{"wrong type", ok + "Build = \"7\"\n", `FyneApp.toml: line 5 (last key "Details.Build"): incompatible types: TOML value has type string; destination has type integer`},
		{"negative build", ok + "Build = -1\n", "FyneApp.toml: [Details] Build -1 must not be negative"},
		{"migration not bool", ok + "[Migrations]\nfyneDo = 1\n", `FyneApp.toml: line 6 (last key "Migrations.fyneDo"): incompatible types: TOML value has type int64; destination has type boolean`},
		{"empty file", "", `FyneApp.toml: [Details] needs Name = "..."`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(c.src))
			if err == nil {
				t.Fatalf("accepted %q", c.src)
			}
			if !strings.HasPrefix(err.Error(), "FyneApp.toml:") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\nwant  %q in it", err, c.want)
			}
		})
	}
}

// The TOML the old hand-written parser refused (multi-line arrays and
// strings, dotted keys, inline tables) is TOML Fyne reads, so Heartline
// reads it too.
func TestParseMetadataFullTOML(t *testing.T) {
	src := "Details.Name = \"Heartline\"\n" +
		"Details.ID = \"chat.heartline.app\"\n" +
		"Details.Version = \"\"\"0.2.0\"\"\"\n" +
		"Other = { a = 1 }\n" +
		"[LinuxAndBSD]\n" +
		"Keywords = [\n  \"chat\", # a comment\n  \"relay\",\n]\n"
	m, err := ParseMetadata([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "Heartline" || m.ID != "chat.heartline.app" || m.Version != "0.2.0" || !slices.Equal(m.Keywords, []string{"chat", "relay"}) {
		t.Errorf("got %+v", m)
	}
}

func TestVersionStringUsesLinkerCommit(t *testing.T) {
	defer func(c string) { Commit = c }(Commit)
	Commit = "0123456789abcdef0123456789abcdef01234567"
	if got, want := VersionString(), App().Version+" (0123456)"; got != want {
		t.Errorf("VersionString() = %q, want %q", got, want)
	}
	Commit = "v0.1.0-3-gdeadbee" // git describe output stays whole
	if got, want := VersionString(), App().Version+" (v0.1.0-3-gdeadbee)"; got != want {
		t.Errorf("VersionString() = %q, want %q", got, want)
	}
}

// A real binary built in this checkout without -X still names its commit,
// from the VCS stamp Go writes into the build info.
func TestVersionStringFromBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "version")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./scripts/version")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-full").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(string(out))
	want := App().Version + " (" + string(rev[:7])
	if !strings.HasPrefix(got, want) {
		t.Fatalf("binary printed %q, want it to start with %q", got, want)
	}
	// Ours, and other helpers', uncommitted edits make a checkout "modified".
	if got != want+")" && got != want+", modified)" {
		t.Fatalf("binary printed %q", got)
	}
}
