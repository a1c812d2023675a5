// Command heartline is the Heartline desktop app: a chat room client (and,
// in host mode, a relay) with avatars, reconnect, an outbox and link
// diagnostics. The UI lives in desktop/ui; this file reads flags and starts it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/heartline/heartline"
	"github.com/heartline/heartline/assets"
	"github.com/heartline/heartline/desktop/settings"
	"github.com/heartline/heartline/desktop/ui"
	"github.com/heartline/heartline/shared/protocol"
)

// processStart is when the process started (for the start-up timings).
var processStart = time.Now()

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("heartline", flag.ContinueOnError)
	var (
		relay    = fs.String("relay", "", "relay address to join (host:port, ws://host:port/ws or wss://...); with --name and --room joins at once")
		name     = fs.String("name", "", "display name")
		room     = fs.String("room", "", "room name (a-z 0-9 - _)")
		token    = fs.String("token", "", "the relay's access token, if it has one")
		avatar   = fs.String("avatar", "", "built-in avatar name (fox, owl, ...), or \"none\" for initials")
		hostMode = fs.Bool("host", false, "host the room on this computer (embedded relay) and join it")
		port     = fs.Int("port", 0, "port for --host (default: the saved one, else 7070)")
		profile  = fs.String("profile", "", "keep settings under a separate profile (two instances on one computer)")
		theme    = fs.String("theme", "", "system, light or dark")
		size     = fs.String("size", "", "window size, e.g. 1000x680")
		script   = fs.String("script", "", "follow a command file (say/wait/show/scroll/quit), for demos and screenshots")
		preload  = fs.Int("preload", 0, "measurement only: fill the room with N generated messages")
		seed     = fs.Int("seed-history", 0, "measurement only: add N generated messages to the saved rooms' local history, then exit")
		verbose  = fs.Bool("v", false, "log connection details to stderr")
		version  = fs.Bool("version", false, "print the version and exit")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: heartline [flags]\n\nWithout flags the app opens where you left it (or on the join screen).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	meta := heartline.App()
	if *version {
		fmt.Println(meta.Name, heartline.VersionString())
		return 0
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	md, err := appMetadata(meta, *profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "heartline:", err)
		return 2
	}
	icon := md.Icon
	// A plain `go build` does not embed FyneApp.toml; the root package does,
	// so the metadata (and the fyneDo migration) is right in every binary.
	app.SetMetadata(md)
	a := app.NewWithID(md.ID)
	a.SetIcon(icon)

	u := ui.New(a, ui.Options{AppName: meta.Name, Version: meta.Version, Icon: icon, Logger: log, StagedStart: true})
	if *seed > 0 {
		err := u.SeedHistory(*seed)
		u.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "heartline: --seed-history:", err)
			return 1
		}
		return 0
	}
	p := u.Profile()
	override := false
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
			override = true
		}
	}
	set(&p.Relay, *relay)
	set(&p.Name, *name)
	set(&p.Room, *room)
	set(&p.Token, *token)
	if *avatar != "" {
		override = true
		switch {
		case *avatar == "none":
			p.Avatar = ""
		case strings.Contains(*avatar, ":"):
			p.Avatar = *avatar
		default:
			if _, ok := assets.BuiltinAvatar(*avatar); !ok {
				fmt.Fprintf(os.Stderr, "heartline: --avatar %q: not a built-in avatar (%s)\n", *avatar, strings.Join(assets.BuiltinAvatarNames(), ", "))
				return 2
			}
			p.Avatar = protocol.BuiltinAvatar(*avatar)
		}
	}
	if *theme != "" {
		switch *theme {
		case "system", "light", "dark":
			p.Theme = settingsTheme(*theme)
			override = true
		default:
			fmt.Fprintln(os.Stderr, "heartline: --theme: system, light or dark")
			return 2
		}
	}
	if *hostMode {
		p.Host, override = true, true
	} else if *relay != "" {
		p.Host = false
	}
	if *port != 0 {
		p.HostPort, override = *port, true
	}
	join := (p.Host || p.Relay != "") && p.Name != "" && p.Room != "" && (*relay != "" || *hostMode || *name != "")
	if override {
		u.Start(&p, join)
	} else {
		u.Start(nil, false)
	}
	if *size != "" {
		var w, h float32
		if _, err := fmt.Sscanf(*size, "%fx%f", &w, &h); err == nil && w > 0 && h > 0 {
			u.Window().Resize(fyne.NewSize(w, h))
		}
	}
	if *preload > 0 {
		u.Preload(*preload)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if *script != "" {
		go func() {
			if err := u.FollowScript(ctx, *script); err != nil {
				log.Error("script", "err", err)
			}
		}()
	}
	// With several saved rooms the others open after this, on the UI loop
	// ("every saved room opened").
	log.Debug("window built, the selected room opened", "after", time.Since(processStart), "cpu", ui.ProcessCPU())
	a.Lifecycle().SetOnStarted(func() {
		log.Debug("app started", "after", time.Since(processStart))
		// Runs on the UI loop's next turn: the window is up and drawing.
		fyne.Do(func() { log.Debug("UI loop running", "after", time.Since(processStart)) })
	})
	a.Run()
	return 0
}

func settingsTheme(s string) settings.Theme { return settings.Theme(s) }

// appMetadata is what Fyne learns about the app: FyneApp.toml's name, ID,
// version, build and migrations, the embedded icon, and a profile suffix on
// the ID (so that two instances on one computer keep separate preferences).
func appMetadata(meta heartline.Metadata, profile string) (fyne.AppMetadata, error) {
	id := meta.ID
	if profile != "" {
		if err := protocol.ValidateRoom(profile); err != nil {
			return fyne.AppMetadata{}, fmt.Errorf("--profile %q: use a-z, 0-9, - and _ only", profile)
		}
		id += "." + profile
	}
	return fyne.AppMetadata{
		ID: id, Name: meta.Name, Version: meta.Version, Build: meta.Build,
		Icon:       fyne.NewStaticResource("heartline.png", assets.Icon()),
		Migrations: meta.Migrations,
	}, nil
}
