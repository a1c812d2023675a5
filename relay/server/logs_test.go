package server

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heartline/heartline/internal/testutil"
	"github.com/heartline/heartline/shared/protocol"
)

// Connect, join, leave and eviction are logged with the member id and the
// remote address, through the injected logger.
func TestLogLines(t *testing.T) {
	var buf testutil.SyncBuffer
	cfg := fastConfig(t)
	cfg.Grace = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	tr := startRelay(t, cfg)
	watcher, _ := tr.join("logs", "Watcher", newKey())
	stop := watcher.keepAlive(40 * time.Millisecond)
	defer stop()
	silent, w := tr.join("logs", "Silent", newKey())
	silent.expectClose(protocol.CloseHeartbeatTimeout)
	watcher.expect(protocol.TypeLeft)
	id := w.You.ID
	// The eviction's disconnect line is written when the socket's goroutines
	// end, which may be after the watcher hears of the leave.
	waitFor(t, 5*time.Second, "log lines", func() bool { return strings.Contains(buf.String(), "msg=disconnect") })
	lines := strings.Split(buf.String(), "\n")
	for _, want := range []string{"msg=connect", `msg="member joined"`, `msg="evicting connection"`, `msg="member away"`, `msg="member left"`} {
		found := false
		for _, l := range lines {
			if strings.Contains(l, want) && (want == "msg=connect" || strings.Contains(l, "member="+id)) && strings.Contains(l, "127.0.0.1:") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %s line with member %s and remote address in:\n%s", want, id, buf.String())
		}
	}
}
