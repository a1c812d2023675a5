package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in microseconds: exact below 128 us,
// then 64 buckets per power of two (under 1.6% relative error), up to ~2^40 us.
// It is not safe for concurrent use: each receiver owns one and they are
// merged after the receivers stop.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

const histBuckets = 128 + 40*64

func histIndex(v uint64) int {
	if v < 128 {
		return int(v)
	}
	e := bits.Len64(v) - 7 // v>>e is in [64, 127]
	idx := 128 + (e-1)*64 + int(v>>uint(e)) - 64
	if idx >= histBuckets {
		return histBuckets - 1
	}
	return idx
}

// histValue is the upper bound of bucket idx, so percentiles never understate.
func histValue(idx int) uint64 {
	if idx < 128 {
		return uint64(idx)
	}
	e := (idx-128)/64 + 1
	m := uint64((idx-128)%64 + 64)
	return (m+1)<<uint(e) - 1
}

func (h *hist) add(us uint64) {
	h.counts[histIndex(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q <= 1) in microseconds, capped at the
// exact maximum.
func (h *hist) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histValue(i), h.max)
		}
	}
	return h.max
}

// latency is the JSON form of a histogram's summary, in milliseconds.
type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *hist) summary() latency {
	ms := func(us uint64) float64 { return float64(us) / float64(time.Millisecond/time.Microsecond) }
	return latency{Count: h.n, P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)),
		P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(h.max)}
}
