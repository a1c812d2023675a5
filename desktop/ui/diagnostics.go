package ui

import (
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/heartline/heartline/desktop/chatview"
	"github.com/heartline/heartline/shared/client"
	"github.com/heartline/heartline/shared/netdiag"
	"github.com/heartline/heartline/shared/protocol"
)

// diagState is what the diagnostics view shows: the latest report, whether a
// check runs, and what the last good connection looked like (to tell
// "your address changed" from "nothing changed").
type diagState struct {
	welcome    *protocol.Welcome
	report     *netdiag.Report
	running    bool
	runs       int // checks started, so a stale result never replaces a newer one
	lastPublic string
	lastIfaces []string
}

// diagnoseDrop runs a check in the background after a dropped link; it never
// holds up the reconnect (the engine reconnects on its own).
func (u *UI) diagnoseDrop(d client.Drop) {
	info := &netdiag.DropInfo{At: d.At, Cause: d.Cause, CloseCode: d.CloseCode, Detected: d.Detected}
	u.runDiagnostics(info, d)
}

// runDiagnostics starts a check; drop is nil for an on-demand one.
func (u *UI) runDiagnostics(drop *netdiag.DropInfo, d client.Drop) {
	if u.session == nil {
		return
	}
	t := netdiag.Target{
		RelayURL:           u.session.c.URL(),
		PreviousPublic:     u.diag.lastPublic,
		PreviousInterfaces: u.diag.lastIfaces,
		Drop:               drop,
		LastRTT:            u.session.c.State().RTT,
		Logger:             u.log,
	}
	if w := u.diag.welcome; w != nil {
		t.STUNPorts = w.STUN
		t.ObservedAddr = w.ObservedAddr
		t.Heartbeat = netdiag.Heartbeat{Interval: time.Duration(w.Heartbeat.IntervalMS) * time.Millisecond, Timeout: time.Duration(w.Heartbeat.TimeoutMS) * time.Millisecond}
	}
	if d.Welcomed {
		t.STUNPorts, t.ObservedAddr = d.STUNPorts, d.ObservedAddr
	}
	u.diag.running = true
	u.diag.runs++
	run := u.diag.runs
	u.refreshDiagnostics()
	u.bg.Add(1)
	go func() {
		defer u.bg.Done()
		rep := u.opts.Diagnose(u.ctx, t)
		if u.ctx.Err() != nil {
			return
		}
		u.do(func() {
			if run != u.diag.runs {
				return
			}
			u.diag.running = false
			u.diag.report = &rep
			if rep.Verdict.Kind == netdiag.VerdictOK {
				if rep.PublicAddr != "" {
					u.diag.lastPublic = rep.PublicAddr
				}
				u.diag.lastIfaces = rep.Interfaces
			}
			u.refreshDiagnostics()
		})
	}()
}

// diagView is the diagnostics screen's widgets.
type diagView struct {
	checked *widget.Label
	verdict *widget.Label
	next    *widget.Label
	report  *widget.Label
	drops   *widget.Label
	runBtn  *widget.Button
	copyBtn *widget.Button
	content fyne.CanvasObject
}

func (u *UI) showDiagnostics() {
	v := &diagView{}
	v.verdict = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.verdict.Wrapping = fyne.TextWrapWord
	v.checked = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Italic: true})
	v.checked.Wrapping = fyne.TextWrapWord
	v.next = widget.NewLabel("")
	v.next.Wrapping = fyne.TextWrapWord
	v.report = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	v.report.Selectable = true
	v.report.Wrapping = fyne.TextWrapWord
	v.drops = widget.NewLabel("")
	v.drops.Wrapping = fyne.TextWrapWord
	v.runBtn = widget.NewButtonWithIcon("Check the link now", theme.ViewRefreshIcon(), func() {
		u.runDiagnostics(nil, client.Drop{})
	})
	v.runBtn.Importance = widget.HighImportance
	v.copyBtn = widget.NewButtonWithIcon("Copy report", theme.ContentCopyIcon(), func() {
		if u.diag.report != nil {
			u.app.Clipboard().SetContent(u.diagnosticsText())
		}
	})
	back := widget.NewButtonWithIcon("Back", theme.NavigateBackIcon(), func() { u.showRoom() })
	title := widget.NewLabelWithStyle("Link diagnostics", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	title.SizeName = theme.SizeNameHeadingText

	body := container.NewVBox(
		widget.NewCard("Verdict", "", container.NewVBox(v.verdict, v.next, v.checked)),
		widget.NewCard("Recent drops", "", v.drops),
		widget.NewCard("Report", "", v.report),
	)
	top := container.NewVBox(container.NewHBox(back, title, layout.NewSpacer(), v.copyBtn, v.runBtn), widget.NewSeparator())
	v.content = container.NewBorder(container.NewPadded(top), nil, nil, nil, container.NewVScroll(container.NewPadded(body)))
	u.diagView = v
	u.setContent("diagnostics", v.content)
	u.refreshDiagnostics()
	if u.diag.report == nil && !u.diag.running && u.session != nil {
		u.runDiagnostics(nil, client.Drop{})
	}
}

func (u *UI) refreshDiagnostics() {
	v := u.diagView
	if v == nil || u.screen != "diagnostics" {
		return
	}
	if u.diag.running {
		v.runBtn.Disable()
		v.runBtn.SetText("Checking…")
	} else {
		v.runBtn.Enable()
		v.runBtn.SetText("Check the link now")
	}
	rep := u.diag.report
	switch {
	case rep != nil:
		when := "Checked at " + rep.Started.Format("15:04:05")
		if rep.Drop != nil {
			when += ", right after the link dropped"
		}
		when += "."
		if u.room != nil && u.room.link.Phase == chatview.PhaseConnected && rep.Verdict.Kind != netdiag.VerdictOK {
			when += " The link is back now: check again to see how it looks."
		}
		v.checked.SetText(when)
		v.verdict.SetText(rep.Verdict.Summary)
		v.next.SetText(rep.Verdict.NextStep)
		v.report.SetText(rep.Text())
		v.copyBtn.Enable()
	case u.diag.running:
		v.checked.SetText("")
		v.verdict.SetText("Checking the link to the relay…")
		v.next.SetText("")
		v.report.SetText("")
		v.copyBtn.Disable()
	default:
		v.checked.SetText("")
		v.verdict.SetText("No check has run yet.")
		v.next.SetText("A check runs by itself whenever the link drops.")
		v.report.SetText("")
		v.copyBtn.Disable()
	}
	v.drops.SetText(u.dropsText())
}

// dropsText lists the last few dropped links, newest first.
func (u *UI) dropsText() string {
	if u.room == nil || len(u.room.drops) == 0 {
		return "No dropped links in this session."
	}
	var b strings.Builder
	for i := len(u.room.drops) - 1; i >= 0; i-- {
		d := u.room.drops[i]
		fmt.Fprintf(&b, "%s  %s", d.At.Format("15:04:05"), d.Cause)
		if d.Detected != "" {
			fmt.Fprintf(&b, " (noticed by: %s)", d.Detected)
		}
		if i > 0 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// diagnosticsText is what "Copy report" puts on the clipboard.
func (u *UI) diagnosticsText() string {
	var b strings.Builder
	b.WriteString(u.diag.report.Text())
	b.WriteString("\n\nRecent drops:\n")
	b.WriteString(u.dropsText())
	b.WriteString("\n")
	return b.String()
}
