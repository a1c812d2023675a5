package client

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: the engine's, the relay's
// and the test helpers' (proxies, scripted relays) alike. A run inside a
// network namespace plays its role instead (netns_test.go).
func TestMain(m *testing.M) {
	if role := os.Getenv(nsRoleEnv); role != "" {
		os.Exit(nsRole(role))
	}
	goleak.VerifyTestMain(m)
}
