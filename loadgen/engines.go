package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartline/heartline/shared/client"
)

// engineRun is one shared/client engine of a load fleet (storm -engine,
// failover, rolling) and its place among the engines joining.
type engineRun struct {
	cl       *client.Client
	joinOnce sync.Once
	release  func() // gives the join slot back
	welcomes atomic.Int64
}

// engineStarts is what a fleet keeps of its engines' Run goroutines.
type engineStarts struct {
	runCtx    context.Context
	runCancel context.CancelFunc
	runs      sync.WaitGroup // Run goroutines
	readers   sync.WaitGroup // event readers
	joined    atomic.Int64
	ended     atomic.Int64 // Run returned before the first welcome
}

// engineHooks is what differs between fleets when their engines start.
type engineHooks struct {
	newClient func(i int) (*client.Client, error)
	read      func(i int)    // drains engine i's events; calls its release at its first welcome
	failed    func(error)    // an engine that could not be made
	stopped   func(code int) // an engine the relay stopped for good
}

// start makes and runs one engine per entry of engines, at most conc
// joining at a time, and waits (up to 5 minutes) until each has joined or
// ended; it returns how many joined. Runs end with ctx.
func (k *engineStarts) start(ctx context.Context, engines []*engineRun, conc int, h engineHooks) int {
	k.runCtx, k.runCancel = context.WithCancel(ctx)
	sem := make(chan struct{}, conc)
	joinCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
start:
	for i, m := range engines {
		cl, err := h.newClient(i)
		if err != nil {
			h.failed(err)
			k.ended.Add(1)
			continue
		}
		m.cl = cl
		select {
		case sem <- struct{}{}:
		case <-joinCtx.Done():
			break start
		}
		m.release = func() { m.joinOnce.Do(func() { <-sem }) }
		k.readers.Go(func() { h.read(i) })
		k.runs.Go(func() {
			err := cl.Run(k.runCtx)
			if stop, ok := errors.AsType[*client.StopError](err); ok {
				h.stopped(stop.Code)
			}
			if m.welcomes.Load() == 0 {
				k.ended.Add(1)
			}
			m.release()
		})
	}
	for int(k.joined.Load()+k.ended.Load()) < len(engines) && joinCtx.Err() == nil {
		sleepCtx(joinCtx, 100*time.Millisecond)
	}
	return int(k.joined.Load())
}
