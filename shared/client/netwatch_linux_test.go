package client

import (
	"context"
	"testing"
)

// On Linux the watcher is told by the kernel; the portable looks are only
// a fallback. Both kernel sources must open here (a plain Linux, no root
// needed), and return at once when their context is already over.
func TestLinuxWatchersOpen(t *testing.T) {
	for name, open := range map[string]func() (netSource, error){
		"timerfd (resume)": openResumeWatch, "rtnetlink": openNetlinkWatch,
	} {
		src, err := open()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		src(ctx, func(ch NetChange) { t.Errorf("%s reported %+v", name, ch) })
	}
}
