package client

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: the engine's, the relay's
// and the test helpers' (proxies, scripted relays) alike.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
