package client

import (
	"sync"
	"time"
)

// fakeClock is a Clock that moves only when a test calls Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	start  time.Time
	awake  time.Duration           // how far Advance moved it: the monotonic clock
	timers map[*fakeTimer]struct{} // running timers
}

func newFakeClock() *fakeClock {
	start := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	return &fakeClock{now: start, start: start, timers: make(map[*fakeTimer]struct{})}
}

// Sleep moves the clock as a computer sees a suspend of d: the wall clock
// jumps, the monotonic clock stands still, and so does every running timer
// (Go's timers run on the monotonic clock): each fires d later than it
// would have on the wall clock. Nothing fires.
func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		t.at = t.at.Add(d)
	}
}

// clocks is the clockPair of this clock, for sleepTicker: the wall clock
// and the monotonic one since the start.
func (c *fakeClock) clocks() (total, awake time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now.Sub(c.start), c.awake
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{clock: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// Advance moves the clock forward and fires every timer that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.awake += d
	for t := range c.timers {
		if !t.at.After(c.now) {
			delete(c.timers, t)
			select {
			case t.ch <- c.now:
			default:
			}
		}
	}
}

// running returns the deadlines of the running timers.
func (c *fakeClock) running() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for t := range c.timers {
		out = append(out, t.at)
	}
	return out
}

type fakeTimer struct {
	clock *fakeClock
	ch    chan time.Time
	at    time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	_, ok := t.clock.timers[t]
	delete(t.clock.timers, t)
	return ok
}

func (t *fakeTimer) Reset(d time.Duration) {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	select { // like time.Timer since Go 1.23: no stale value after Reset
	case <-t.ch:
	default:
	}
	t.at = t.clock.now.Add(d)
	if d <= 0 {
		delete(t.clock.timers, t)
		t.ch <- t.clock.now
		return
	}
	t.clock.timers[t] = struct{}{}
}
