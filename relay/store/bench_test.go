package store

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Run with, for example:
//
//	go test -run '^$' -bench . -benchtime 2s ./relay/store
//
// The append benchmarks fsync a real file in the test's temp dir, so their
// figures are the disk's as much as the code's.

func benchStore(b *testing.B, opts Options) *Store {
	b.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.EnsureRoom("bench"); err != nil {
		b.Fatal(err)
	}
	return s
}

func benchRecord(member string, i uint64) Record {
	return Record{
		TS:       time.Now().UnixMilli(),
		MemberID: member,
		ClientID: fmt.Sprintf("c%d", i),
		Text:     "a typical chat line, some forty to sixty characters long",
		Name:     "member " + member,
	}
}

// BenchmarkAppendOneRoom: many senders into one room, each waiting for its
// ack (durable) before the next message, as relay connections do. Group
// commit turns their waits into shared fsyncs.
func BenchmarkAppendOneRoom(b *testing.B) {
	for _, senders := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			s := benchStore(b, Options{})
			var ids atomic.Uint64
			// RunParallel starts SetParallelism*GOMAXPROCS goroutines.
			b.SetParallelism(max(1, senders/runtime.GOMAXPROCS(0)))
			startCommits := s.Stats().Commits
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				member := fmt.Sprint("m", ids.Add(1))
				done := make(chan error, 1)
				for pb.Next() {
					s.AppendNext("bench", benchRecord(member, ids.Add(1)), func(_ Record, err error) { done <- err })
					if err := <-done; err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			commits := s.Stats().Commits - startCommits
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "msgs/commit")
		})
	}
}

// BenchmarkAppendOneRoomOpenLoop: messages arrive without waiting for each
// other's acks (many clients, each with messages in flight); the committer
// takes up to MaxBatch per transaction. This is the store's capacity for
// one room; the relay's rate is the smaller of this and what clients offer.
func BenchmarkAppendOneRoomOpenLoop(b *testing.B) {
	s := benchStore(b, Options{})
	startCommits := s.Stats().Commits
	var wg sync.WaitGroup
	wg.Add(b.N)
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		s.AppendNext("bench", benchRecord(fmt.Sprint("m", i%100), uint64(i)), func(_ Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d appends failed", failed.Load())
	}
	commits := s.Stats().Commits - startCommits
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "msgs/commit")
}

// BenchmarkAppendSerial: one message at a time, each waiting for its own
// commit: the cost of one fsync'd transaction (without the commit interval,
// which would make it the interval's cost).
func BenchmarkAppendSerial(b *testing.B) {
	s := benchStore(b, Options{CommitInterval: -1})
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		s.AppendNext("bench", benchRecord("m", uint64(i)), func(_ Record, err error) { done <- err })
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// filledStore holds one room with a full history (1000 messages, some
// already pruned so that the index and retention are in steady state).
func filledStore(b *testing.B) *Store {
	s := benchStore(b, Options{})
	const n = 1200
	done := make(chan error, n)
	for i := range n {
		s.AppendNext("bench", benchRecord(fmt.Sprint("m", i%10), uint64(i)), func(_ Record, err error) { done <- err })
	}
	for range n {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func BenchmarkAfter(b *testing.B) {
	s := filledStore(b)
	latest, _ := s.Seq("bench")
	for _, missed := range []uint64{10, 50, 1000} {
		b.Run(fmt.Sprintf("missed=%d", missed), func(b *testing.B) {
			for b.Loop() {
				recs, complete, err := s.After("bench", latest-missed, 0)
				if err != nil || !complete || uint64(len(recs)) != missed {
					b.Fatalf("After: %d records, complete=%v, %v", len(recs), complete, err)
				}
			}
		})
	}
}

func BenchmarkLatest(b *testing.B) {
	s := filledStore(b)
	for b.Loop() {
		recs, err := s.Latest("bench", 50)
		if err != nil || len(recs) != 50 {
			b.Fatalf("Latest: %d, %v", len(recs), err)
		}
	}
}

func BenchmarkLookupID(b *testing.B) {
	s := filledStore(b)
	i := 0
	for b.Loop() {
		i++
		// ids c200..c1199 are retained (member m(i%10) sent c<i>)
		n := 200 + i%1000
		if _, ok, err := s.LookupID("bench", fmt.Sprint("m", n%10), fmt.Sprint("c", n)); !ok || err != nil {
			b.Fatalf("LookupID c%d: %v %v", n, ok, err)
		}
	}
}

// BenchmarkEncodeRecord compares the stored binary form with JSON, which
// was the alternative (size per record is reported as B/record).
func BenchmarkEncodeRecord(b *testing.B) {
	rec := Record{Seq: 123456, TS: time.Now().UnixMilli(), MemberID: "m-7f3a9c2e1b",
		ClientID: "c-1700000000000-42", Text: strings.Repeat("chat ", 10), Name: "Alice", Avatar: "builtin:default"}
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = encodeRecord(buf[:0], &rec)
			if _, err := decodeRecord(rec.Seq, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "B/record")
	})
	b.Run("json", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = json.Marshal(&rec); err != nil {
				b.Fatal(err)
			}
			var r Record
			if err := json.Unmarshal(buf, &r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "B/record")
	})
}

// BenchmarkOpen: start-up with 100 full rooms (100,000 messages), which
// includes bbolt's page check and decoding every record once.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	const rooms, each = 100, 1000
	done := make(chan error, rooms*each)
	for r := range rooms {
		room := fmt.Sprint("room-", r)
		if _, err := s.EnsureRoom(room); err != nil {
			b.Fatal(err)
		}
		for i := range each {
			s.AppendNext(room, benchRecord(fmt.Sprint("m", i%10), uint64(i)), func(_ Record, err error) { done <- err })
		}
	}
	for range rooms * each {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, FileName))
	for b.Loop() {
		s, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB-file")
}
