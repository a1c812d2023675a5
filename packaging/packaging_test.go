package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heartline/heartline"
	"github.com/heartline/heartline/assets"
	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/relay/server"
)

// repoRoot is the module root: tests run in packaging/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed; skipping what only it can check", tool)
	}
	return p
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var app = heartline.App()

func desktopPath() string  { return filepath.Join("linux", app.ID+".desktop") }
func metainfoPath() string { return filepath.Join("linux", app.ID+".metainfo.xml") }

// desktopEntry reads the [Desktop Entry] group of a .desktop file.
func desktopEntry(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string]string{}
	group := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			group = line
		case group == "[Desktop Entry]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not key=value", path, line)
			}
			kv[k] = v
		}
	}
	return kv
}

func TestDesktopEntryValidates(t *testing.T) {
	tool := need(t, "desktop-file-validate")
	if out := run(t, ".", nil, tool, desktopPath()); strings.TrimSpace(out) != "" {
		t.Errorf("desktop-file-validate has remarks:\n%s", out)
	}
}

// The menu entry repeats what FyneApp.toml says; keep them in step.
func TestDesktopEntryMatchesMetadata(t *testing.T) {
	e := desktopEntry(t, desktopPath())
	want := map[string]string{
		"Type":        "Application",
		"Name":        app.Name,
		"GenericName": app.GenericName,
		"Comment":     app.Comment,
		"Icon":        app.ID, // the icons are installed under the app ID
		"Exec":        "heartline",
		"Categories":  strings.Join(app.Categories, ";") + ";",
		"Keywords":    strings.Join(app.Keywords, ";") + ";",
		"Terminal":    "false",
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s: %s=%q, FyneApp.toml says %q", desktopPath(), k, e[k], v)
		}
	}
}

type metainfo struct {
	ID         string `xml:"id"`
	Name       string `xml:"name"`
	Launchable string `xml:"launchable"`
	Binary     string `xml:"provides>binary"`
	License    string `xml:"project_license"`
	Releases   []struct {
		Version string `xml:"version,attr"`
		Date    string `xml:"date,attr"`
	} `xml:"releases>release"`
}

func TestMetainfo(t *testing.T) {
	data, err := os.ReadFile(metainfoPath())
	if err != nil {
		t.Fatal(err)
	}
	var m metainfo
	if err := xml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != app.ID || m.Name != app.Name || m.Launchable != app.ID+".desktop" || m.Binary != "heartline" {
		t.Errorf("metainfo id %q name %q launchable %q binary %q; want %q %q %q heartline",
			m.ID, m.Name, m.Launchable, m.Binary, app.ID, app.Name, app.ID+".desktop")
	}
	// Software centres show the newest <release> as the version: a version
	// bump in FyneApp.toml needs its release note here, first.
	if len(m.Releases) == 0 || m.Releases[0].Version != app.Version {
		t.Errorf("the first <release> must be version %s (FyneApp.toml); releases: %+v", app.Version, m.Releases)
	}
	for _, r := range m.Releases {
		if _, err := time.Parse("2006-01-02", r.Date); err != nil {
			t.Errorf("release %s: date %q is not YYYY-MM-DD", r.Version, r.Date)
		}
	}
	// Software centres show the project's licence from here; it must be the
	// one the repository's LICENSE file grants.
	license, err := os.ReadFile(filepath.Join(repoRoot(t), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if m.License != "Apache-2.0" || !bytes.Contains(license, []byte("Apache License\n                           Version 2.0, January 2004")) {
		t.Errorf("metainfo project_license %q; want Apache-2.0, the licence in LICENSE", m.License)
	}
	tool := need(t, "appstreamcli")
	run(t, ".", nil, tool, "validate", "--no-net", metainfoPath())
}

// buildStandIn compiles a small real program to install in place of the
// desktop app (which takes minutes to build): scripts/version, which prints
// the version, so the installed launcher can be run and checked.
func buildStandIn(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "heartline")
	run(t, repoRoot(t), nil, "go", "build", "-o", bin, "./scripts/version")
	return bin
}

// extract unpacks a .tar.gz into dir and returns the regular files' names
// (relative, slash-separated) with their modes.
func extract(t *testing.T, archive, dir string) map[string]os.FileMode {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]os.FileMode{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(h.Name, "..") || filepath.IsAbs(h.Name) {
			t.Fatalf("archive entry %q escapes its folder", h.Name)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s is owned by %d:%d; archives should not carry the builder's ids", h.Name, h.Uid, h.Gid)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, h.FileInfo().Mode().Perm()); err != nil {
				t.Fatal(err)
			}
			files[h.Name] = h.FileInfo().Mode().Perm()
		default:
			t.Fatalf("unexpected entry type %c for %s", h.Typeflag, h.Name)
		}
	}
}

func checkSums(t *testing.T, dist string, archives ...string) {
	t.Helper()
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range archives {
		data, err := os.ReadFile(filepath.Join(dist, a))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		line := hex.EncodeToString(sum[:]) + "  " + a + "\n"
		if !strings.Contains(string(sums), line) {
			t.Errorf("SHA256SUMS lacks %q:\n%s", line, sums)
		}
	}
}

// TestDesktopArchiveInstalls packages a stand-in binary exactly as the
// release does, unpacks the archive and runs its Makefile the ways a person
// would: staged for a distribution package, and into a home folder.
func TestDesktopArchiveInstalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs an archive")
	}
	need(t, "make")
	root := repoRoot(t)
	dist := t.TempDir()
	run(t, root, []string{"DIST_DIR=" + dist, "DESKTOP_BINARY=" + buildStandIn(t)}, "scripts/dist-desktop.sh", "linux/amd64")

	name := fmt.Sprintf("heartline-%s-linux-amd64", app.Version)
	checkSums(t, dist, name+".tar.gz")
	unpacked := t.TempDir()
	files := extract(t, filepath.Join(dist, name+".tar.gz"), unpacked)
	want := []string{"heartline", "Makefile", "README.txt",
		"share/applications/" + app.ID + ".desktop", "share/metainfo/" + app.ID + ".metainfo.xml"}
	for _, n := range assets.IconSizes() {
		want = append(want, fmt.Sprintf("share/icons/hicolor/%dx%d/apps/%s.png", n, n, app.ID))
	}
	for _, w := range want {
		if _, ok := files[name+"/"+w]; !ok {
			t.Errorf("archive lacks %s", w)
		}
	}
	if len(files) != len(want) {
		t.Errorf("archive holds %d files, want %d: %v", len(files), len(want), files)
	}
	if files[name+"/heartline"]&0o111 == 0 {
		t.Errorf("heartline is not executable in the archive (mode %v)", files[name+"/heartline"])
	}
	dir := filepath.Join(unpacked, name)

	t.Run("staged", func(t *testing.T) {
		stage := t.TempDir()
		run(t, dir, nil, "make", "install", "DESTDIR="+stage, "PREFIX=/usr")
		checkInstalled(t, stage, "/usr")
		run(t, dir, nil, "make", "uninstall", "DESTDIR="+stage, "PREFIX=/usr")
		var left []string
		filepath.WalkDir(stage, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				left = append(left, p)
			}
			return err
		})
		if len(left) > 0 {
			t.Errorf("uninstall left files behind: %v", left)
		}
	})
	t.Run("home", func(t *testing.T) {
		prefix := filepath.Join(t.TempDir(), "home", ".local")
		run(t, dir, nil, "make", "install", "PREFIX="+prefix)
		checkInstalled(t, "", prefix)
	})
	t.Run("relative prefix refused", func(t *testing.T) {
		// What make receives from `make install PREFIX='~/.local'`.
		cmd := exec.Command("make", "install", "PREFIX=~/.local")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "BINDIR must be an absolute path") {
			t.Fatalf("install with a relative prefix: err %v\n%s", err, out)
		}
	})
}

// checkInstalled checks a tree installed under destdir+prefix: the menu
// entry validates and launches the installed binary, and every icon is there.
func checkInstalled(t *testing.T, destdir, prefix string) {
	t.Helper()
	entryPath := filepath.Join(destdir+prefix, "share", "applications", app.ID+".desktop")
	if tool, err := exec.LookPath("desktop-file-validate"); err == nil {
		run(t, ".", nil, tool, entryPath)
	}
	e := desktopEntry(t, entryPath)
	wantExec := prefix + "/bin/heartline"
	if e["Exec"] != wantExec {
		t.Fatalf("installed Exec=%q, want the installed binary %q", e["Exec"], wantExec)
	}
	// Launch it the way a menu would (inside the stage, for a DESTDIR install).
	out := run(t, ".", nil, destdir+e["Exec"])
	if strings.TrimSpace(out) != app.Version {
		t.Errorf("installed binary printed %q, want %q", out, app.Version)
	}
	for _, n := range assets.IconSizes() {
		p := filepath.Join(destdir+prefix, "share", "icons", "hicolor", fmt.Sprintf("%dx%d", n, n), "apps", e["Icon"]+".png")
		f, err := os.Open(p)
		if err != nil {
			t.Errorf("icon %d px for Icon=%s: %v", n, e["Icon"], err)
			continue
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != n || cfg.Height != n {
			t.Errorf("%s: %dx%d, %v; want %dx%d", p, cfg.Width, cfg.Height, err, n, n)
		}
	}
	if _, err := os.Stat(filepath.Join(destdir+prefix, "share", "metainfo", app.ID+".metainfo.xml")); err != nil {
		t.Error(err)
	}
}

// TestRelayArchive builds the relay for this machine's platform through the
// release script and checks the archive holds what self-hosting needs.
func TestRelayArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay and an archive")
	}
	root := repoRoot(t)
	if out, _ := exec.Command("go", "list", "-f", "{{.Name}}", root+"/relay").Output(); strings.TrimSpace(string(out)) != "main" {
		t.Skip("./relay has no main package yet")
	}
	dist := t.TempDir()
	run(t, root, []string{"DIST_DIR=" + dist}, "scripts/dist.sh", "linux/amd64")
	name := fmt.Sprintf("heartline-relay-%s-linux-amd64", app.Version)
	checkSums(t, dist, name+".tar.gz")
	dir := t.TempDir()
	files := extract(t, filepath.Join(dist, name+".tar.gz"), dir)
	for _, w := range []string{"heartline-relay", "README.txt", "heartline-relay.service", "proxy/nginx.conf", "proxy/Caddyfile", "proxy/nginx-relays.conf", "proxy/Caddyfile-relays"} {
		if _, ok := files[name+"/"+w]; !ok {
			t.Errorf("archive lacks %s; has %v", w, files)
		}
	}
	bin := filepath.Join(dir, name, "heartline-relay")
	out := run(t, ".", nil, bin, "--version")
	if !strings.Contains(out, app.Version) {
		t.Errorf("heartline-relay --version printed %q, want it to name %s", out, app.Version)
	}
	// Static: it must run on any Linux, with no libc to match.
	if data, err := os.ReadFile(bin); err == nil && bytes.Contains(data, []byte("ld-linux")) {
		t.Error("heartline-relay is dynamically linked")
	}
	// The unit starts the binary where its own instructions install it.
	unit, _ := os.ReadFile(filepath.Join(dir, name, "heartline-relay.service"))
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/heartline-relay ")) ||
		!bytes.Contains(unit, []byte("install -m 0755 heartline-relay /usr/local/bin/")) {
		t.Error("the unit's ExecStart and its install instructions disagree")
	}
}

func unitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("systemd", "heartline-relay.service"))
	if err != nil {
		t.Fatal(err)
	}
	d := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			d[k] = append(d[k], v)
		}
	}
	return d
}

func TestSystemdUnit(t *testing.T) {
	d := unitDirectives(t)
	for k, v := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "heartline-relay", "ProtectSystem": "strict",
		"NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
	} {
		if len(d[k]) != 1 || d[k][0] != v {
			t.Errorf("%s=%v, want %q", k, d[k], v)
		}
	}
	// The data dir is the state directory, the only place the service may write.
	if !strings.Contains(d["ExecStart"][0], "--data-dir=%S/"+d["StateDirectory"][0]) {
		t.Errorf("ExecStart %q does not keep data in the StateDirectory", d["ExecStart"][0])
	}
	// systemd must wait longer than the relay's graceful shutdown before SIGKILL.
	stop, err := time.ParseDuration(d["TimeoutStopSec"][0])
	if err != nil || stop <= server.DefaultShutdownTimeout {
		t.Errorf("TimeoutStopSec=%v must exceed the relay's shutdown timeout %v", d["TimeoutStopSec"], server.DefaultShutdownTimeout)
	}

	tool := need(t, "systemd-analyze")
	// verify checks that ExecStart's binary exists: point it at one that does.
	unit, _ := os.ReadFile(filepath.Join("systemd", "heartline-relay.service"))
	self, _ := os.Executable()
	tmp := filepath.Join(t.TempDir(), "heartline-relay.service")
	os.WriteFile(tmp, bytes.Replace(unit, []byte("/usr/local/bin/heartline-relay"), []byte(self), 1), 0o644)
	if out := run(t, ".", nil, tool, "verify", tmp); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify has remarks:\n%s", out)
	}
	out := run(t, ".", nil, tool, "security", "--offline=true", "--no-pager", tmp)
	m := regexp.MustCompile(`Overall exposure level for heartline-relay.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	// 0 is a fully locked-down unit, 10 a wide open one; a network daemon
	// can reach about 1.
	if level, _ := strconv.ParseFloat(m[1], 64); level > 2 {
		t.Errorf("systemd-analyze security rates the unit %s (want <= 2)", m[1])
	}
	t.Logf("systemd-analyze security exposure level: %s", m[1])
}

// The nginx examples: one relay (nginx.conf) and several relays on one
// Redis (nginx-relays.conf).
var nginxExamples = []string{"nginx.conf", "nginx-relays.conf"}

// The Caddy examples, likewise.
var caddyExamples = []string{"Caddyfile", "Caddyfile-relays"}

// nginx must keep a proxied websocket open longer than the relay takes to
// call a silent client dead, or the proxy would cut healthy-but-quiet links.
func TestNginxExample(t *testing.T) {
	for _, name := range nginxExamples {
		t.Run(name, func(t *testing.T) { checkNginxExample(t, name) })
	}
}

func checkNginxExample(t *testing.T, name string) {
	data, err := os.ReadFile(filepath.Join("proxy", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $heartline_connection;"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("%s lacks %q (websocket upgrade)", name, want)
		}
	}
	m := regexp.MustCompile(`proxy_read_timeout (\d+)s;`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s sets no proxy_read_timeout", name)
	}
	if n, _ := strconv.Atoi(string(m[1])); time.Duration(n)*time.Second <= 2*server.DefaultHeartbeatTimeout {
		t.Errorf("proxy_read_timeout %ss is not well above the relay's heartbeat timeout %v", m[1], server.DefaultHeartbeatTimeout)
	}

	nginx := need(t, "nginx")
	// nginx -t with the example as a site, self-signed files for its certificate paths.
	dir := t.TempDir()
	run(t, dir, nil, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=chat.example.org", "-keyout", "key.pem", "-out", "cert.pem")
	site := strings.NewReplacer(
		"/etc/letsencrypt/live/chat.example.org/fullchain.pem", filepath.Join(dir, "cert.pem"),
		"/etc/letsencrypt/live/chat.example.org/privkey.pem", filepath.Join(dir, "key.pem"),
	).Replace(string(data))
	os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o644)
	main := fmt.Sprintf("pid %[1]s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp { access_log off; include %[1]s/site.conf; }\n", dir)
	os.WriteFile(filepath.Join(dir, "main.conf"), []byte(main), 0o644)
	run(t, dir, nil, nginx, "-t", "-p", dir, "-c", filepath.Join(dir, "main.conf"))
}

func TestCaddyExample(t *testing.T) {
	caddy := need(t, "caddy")
	for _, name := range caddyExamples {
		t.Run(name, func(t *testing.T) {
			run(t, "proxy", nil, caddy, "validate", "--adapter", "caddyfile", "--config", name)
			out := run(t, "proxy", nil, caddy, "fmt", name)
			if data, _ := os.ReadFile(filepath.Join("proxy", name)); out != string(data) {
				t.Errorf("%s is not formatted as caddy fmt would (run caddy fmt --overwrite %s)", name, name)
			}
		})
	}
}

// Docker is not available to every test run, so the Containerfile is held
// to what can be checked without it: its build stage's commands run here,
// and the image's settings agree with each other.
func TestContainerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("container", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	cf := string(data)
	for _, want := range []string{
		"FROM scratch", "USER 65532:65532", `VOLUME ["/data"]`, "HEARTLINE_DATA_DIR=/data", "HEARTLINE_LISTEN=:8080",
		"EXPOSE 8080/tcp", `"http://127.0.0.1:8080/healthz"`, "--chown=65532:65532",
	} {
		if !strings.Contains(cf, want) {
			t.Errorf("Containerfile lacks %q", want)
		}
	}
	if testing.Short() {
		return
	}
	root := repoRoot(t)
	if out, _ := exec.Command("go", "list", "-f", "{{.Name}}", root+"/relay").Output(); strings.TrimSpace(string(out)) != "main" {
		t.Skip("./relay has no main package yet")
	}
	// Run the build stage's go build step as written, with /out in a temp dir.
	m := regexp.MustCompile(`(?s)RUN (go build .*?)\n\n`).FindStringSubmatch(cf)
	if m == nil {
		t.Fatal("no `RUN go build` step found")
	}
	out := t.TempDir()
	script := strings.ReplaceAll(strings.ReplaceAll(m[1], "\\\n", " "), "/out/", out+"/")
	run(t, root, []string{"CGO_ENABLED=0", "COMMIT=test"}, "sh", "-c", script)
	for _, f := range []string{"heartline-relay", "healthcheck", "data"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatalf("build stage did not produce /out/%s: %v", f, err)
		}
	}

	// Run the image's entrypoint the way the image configures it (through
	// the environment only) and its HEALTHCHECK command against it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	relay := exec.Command(filepath.Join(out, "heartline-relay"))
	// No STUN: the image's default port 3478 may be taken on a test machine.
	relay.Env = append(os.Environ(), "HEARTLINE_LISTEN="+addr, "HEARTLINE_DATA_DIR="+filepath.Join(out, "data"), "HEARTLINE_STUN_PORT=0")
	var logs testutil.SyncBuffer // written by exec's copier while the test may read it
	relay.Stdout, relay.Stderr = &logs, &logs
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- relay.Wait() }()
	defer func() {
		relay.Process.Kill()
		<-exited
	}()
	health := filepath.Join(out, "healthcheck")
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := exec.Command(health, "-timeout", "1s", "http://"+addr+"/healthz").Run()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck never passed: %v\nrelay output:\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// docker stop sends SIGTERM: the relay must exit cleanly, in time.
	relay.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("relay exited with %v after SIGTERM\n%s", err, logs.String())
		}
		exited <- err // for the deferred wait
	case <-time.After(server.DefaultShutdownTimeout + 5*time.Second):
		t.Errorf("relay still running %v after SIGTERM", server.DefaultShutdownTimeout+5*time.Second)
	}
	if err := exec.Command(health, "-timeout", "1s", "http://"+addr+"/healthz").Run(); err == nil {
		t.Error("healthcheck passes with the relay stopped")
	}
}

func TestDistScriptsShellcheck(t *testing.T) {
	tool := need(t, "shellcheck")
	root := repoRoot(t)
	run(t, root, nil, tool, "-x", "-P", "SCRIPTDIR/..", "scripts/dist.sh", "scripts/dist-desktop.sh")
	// The shared file's variables are used by the scripts that source it.
	run(t, root, nil, tool, "-e", "SC2034", "scripts/dist-common.sh")
}
