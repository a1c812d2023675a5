package client

import (
	"sync"
	"time"
)

// fakeClock is a Clock that moves only when a test calls Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{} // running timers
}

func newFakeClock() *fakeClock {
	return &fakeClock{
		now:    time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC),
		timers: make(map[*fakeTimer]struct{}),
	}
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
