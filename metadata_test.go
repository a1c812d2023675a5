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

func TestParseMetadataErrors(t *testing.T) {
	const ok = "[Details]\nName = \"A\"\nID = \"a.b\"\nVersion = \"1.0.0\"\n"
	cases := []struct{ name, src, want string }{
		{"unterminated string", "[Details]\nName = \"Heartline\n", `FyneApp.toml:2: string is missing its closing "`},
		{"no equals", "[Details]\nName \"x\"\n", `FyneApp.toml:2: expected = after key "Name"`},
		{"bare word", "[Details]\nName = Heartline\n", `FyneApp.toml:2: value "Heartline" is not a string, integer, boolean or array (strings need quotes)`},
		{"duplicate key", ok + "Name = \"B\"\n", `FyneApp.toml:5: key "Name" is defined twice`},
		{"duplicate table", ok + "[Details]\n", "FyneApp.toml:5: table [Details] is defined twice"},
		{"header unclosed", "[Details\n", "FyneApp.toml:1: table header [Details needs a closing ]"},
		{"junk after value", "[Details]\nBuild = 1 2\n", `FyneApp.toml:2: unexpected "2" after the value`},
		{"multi-line array", "[LinuxAndBSD]\nKeywords = [\n  \"a\",\n]\n", "FyneApp.toml:2: array is missing its closing ] (arrays must fit on one line here)"},
		{"multi-line string", "Website = \"\"\"\nx\"\"\"\n", "FyneApp.toml:1: multi-line strings are not supported here"},
		{"dotted key", "Details.Name = \"x\"\n", "FyneApp.toml:1: dotted keys are not supported here; use a [table]"},
		{"array of tables", "[[Details]]\n", "FyneApp.toml:1: arrays of tables ([[...]]) are not supported here"},
		{"bad escape", "Website = \"a\\qb\"\n", `FyneApp.toml:1: unknown escape \q in string`},
		{"bad int", "[Details]\nBuild = 1__0\n", `FyneApp.toml:2: value "1__0" is not a string, integer, boolean or array (strings need quotes)`},
		{"missing name", "[Details]\nID = \"a.b\"\nVersion = \"1.0.0\"\n", `FyneApp.toml: [Details] needs Name = "..."`},
		{"bad id", "[Details]\nName = \"A\"\nID = \"heartline\"\nVersion = \"1.0.0\"\n", `FyneApp.toml: [Details] ID "heartline" must be a reverse-DNS name like "chat.heartline.app"`},
		{"bad version", "[Details]\nName = \"A\"\nID = \"a.b\"\nVersion = \"v1.0\"\n", `FyneApp.toml: [Details] Version "v1.0" must be a semantic version like "1.2.3"`},
		{"wrong type", ok + "Build = \"7\"\n", "FyneApp.toml: Details.Build has the wrong type (string)"},
		{"negative build", ok + "Build = -1\n", "FyneApp.toml: [Details] Build -1 must not be negative"},
		{"migration not bool", ok + "[Migrations]\nfyneDo = 1\n", "FyneApp.toml: Migrations.fyneDo must be true or false"},
		{"empty file", "", `FyneApp.toml: [Details] needs Name = "..."`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(c.src))
			if err == nil {
				t.Fatalf("accepted %q", c.src)
			}
			if err.Error() != c.want {
				t.Fatalf("error %q\nwant  %q", err, c.want)
			}
		})
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
