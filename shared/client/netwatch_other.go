//go:build !linux

package client

import (
	"context"
	"time"
)

// Elsewhere (macOS, Windows, the BSDs) the watcher looks instead of being
// told: the two clocks every second (two clock reads), the interfaces every
// two seconds. Their notifications (SCNetworkReachability, NotifyAddrChange,
// a routing socket) would need cgo or a dependency each.
const pollEvery = 2 * time.Second

func systemNetSource(ctx context.Context, notify func(NetChange)) {
	mergeSources(
		sleepTicker(SystemClock{}, wallAndMonotonic(), sleepLookEvery),
		pollInterfaces(pollEvery),
	)(ctx, notify)
}

// routeDigest is Linux only; elsewhere a changed route is noticed when an
// address changes with it.
func routeDigest() string { return "" }
