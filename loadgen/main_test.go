package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the generator starts (readers, heartbeats, pacers) ends
// with its run; the edge poller serves the whole process, like the runtime's
// netpoller.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/heartline/heartline/loadgen.(*edgePoller).run"))
}
