package main

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the generator starts (readers, heartbeats, pacers) ends
// with its run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
