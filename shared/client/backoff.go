package client

import (
	"math"
	"time"
)

// Backoff says how long the engine waits before reconnecting. The zero
// value means: base 500 ms, cap 30 s, reset after 30 s of stable connection.
type Backoff struct {
	Base time.Duration // first ceiling; 0 = 500 ms
	Cap  time.Duration // largest ceiling; 0 = 30 s
	// StableAfter: a link that stayed up this long resets the attempt count,
	// so a relay that restarts once a day is retried quickly; 0 = 30 s.
	StableAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = 500 * time.Millisecond
	}
	if b.Cap <= 0 {
		b.Cap = 30 * time.Second
	}
	if b.Cap < b.Base {
		b.Cap = b.Base
	}
	if b.StableAfter <= 0 {
		b.StableAfter = 30 * time.Second
	}
	return b
}

// Ceiling is the largest delay of the given attempt (1-based):
// min(Cap, Base * 2^(attempt-1)).
func (b Backoff) Ceiling(attempt int) time.Duration {
	b = b.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	// Past 2^62 the product overflows; the cap is reached long before.
	exp := math.Ldexp(float64(b.Base), attempt-1)
	if exp >= float64(b.Cap) {
		return b.Cap
	}
	return time.Duration(exp)
}

// Delay is the "full jitter" delay of an attempt: a uniformly random
// duration in [0, Ceiling(attempt)), so that clients dropped together by a
// restarting relay do not come back together. r is a random number in [0,1).
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	if r < 0 || r >= 1 || math.IsNaN(r) {
		r = 0
	}
	return time.Duration(r * float64(b.Ceiling(attempt)))
}
