package avatar

import (
	"context"
	"errors"

	"golang.org/x/sync/semaphore"
)

// ErrBusy means the relay is already decoding as many pictures as its memory
// budget allows, and this one could not wait: the client should retry soon.
var ErrBusy = errors.New("the relay is busy with other pictures; try again in a few seconds")

// Limiter bounds the memory that avatar uploads hold at once: how many may be
// in flight (each holds its body, up to MaxUpload), and how many bytes their
// decodes may allocate together. A picture waits for room in the decode
// budget, in arrival order, for as long as its context allows.
type Limiter struct {
	uploads chan struct{}
	decode  *semaphore.Weighted
}

// NewLimiter admits up to maxUploads uploads at once and decodes whose
// estimated costs add up to at most decodeMemory bytes. decodeMemory must be
// at least MaxDecodeCost, or the largest acceptable picture never fits.
func NewLimiter(decodeMemory int64, maxUploads int) *Limiter {
	return &Limiter{
		uploads: make(chan struct{}, maxUploads),
		decode:  semaphore.NewWeighted(decodeMemory),
	}
}

// Begin admits one upload before its body is read; false means too many are
// in flight (answer ErrBusy). The caller calls end when done with the upload.
func (l *Limiter) Begin() (end func(), ok bool) {
	select {
	case l.uploads <- struct{}{}:
		return func() { <-l.uploads }, true
	default:
		return nil, false
	}
}

// Process is the package's Process, run when the decode budget has room for
// this picture's cost. It returns ErrBusy if ctx ends first.
func (l *Limiter) Process(ctx context.Context, data []byte, contentType string) ([]byte, error) {
	h, err := check(data, contentType)
	if err != nil {
		return nil, err
	}
	if err := l.decode.Acquire(ctx, h.cost); err != nil {
		return nil, ErrBusy
	}
	defer l.decode.Release(h.cost)
	return decode(data, h)
}
