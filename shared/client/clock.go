package client

import "time"

// Clock is the engine's only source of time. Every wait the engine makes
// (backoff, heartbeat, dead-link detection, hello and dial timeouts, the wait
// after bye) goes through it, so a test can drive the engine with a fake
// clock instead of sleeping. Socket deadlines, which the kernel enforces, are
// the one exception: they only back up the clock-driven timeouts.
type Clock interface {
	Now() time.Time
	// NewTimer returns a one-shot timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer is the subset of *time.Timer the engine uses, with the semantics
// time.Timer has since Go 1.23: after Stop or Reset, C holds no value from
// before the call. The engine relies on that: it resets the dead-link
// timer on every frame, and a stale value would drop a live link.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was running.
	Stop() bool
	// Reset makes the timer fire after d from now (the clock's now).
	Reset(d time.Duration)
}

// SystemClock is the real clock; the zero Config uses it.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (s systemTimer) C() <-chan time.Time   { return s.t.C }
func (s systemTimer) Stop() bool            { return s.t.Stop() }
func (s systemTimer) Reset(d time.Duration) { s.t.Reset(d) }
