package store

import (
	"testing"
	"time"
)

// A busy store commits at most every CommitInterval, and everything that
// arrives in between shares the next commit (and its fsync).
func TestCommitIntervalSharesOneCommit(t *testing.T) {
	const interval = 150 * time.Millisecond
	s := openT(t, t.TempDir(), Options{CommitInterval: interval})
	ensureT(t, s, "r")

	done := make(chan time.Time, 3)
	appendAt := func(seq uint64) time.Time {
		at := time.Now()
		s.Append("r", Record{Seq: seq, TS: 1, MemberID: "m", ClientID: string(rune('a' + seq)), Text: "x"}, func(err error) {
			if err != nil {
				t.Errorf("seq %d: %v", seq, err)
			}
			done <- time.Now()
		})
		return at
	}
	wait := func() time.Time {
		t.Helper()
		select {
		case d := <-done:
			return d
		case <-time.After(waitLimit):
			t.Fatal("no commit")
			return time.Time{}
		}
	}

	first := appendAt(1)
	wait()
	// The first commit started after first; the next may start only an
	// interval later, and takes both records that arrive meanwhile.
	appendAt(2)
	time.Sleep(60 * time.Millisecond)
	appendAt(3)
	second, third := wait(), wait()
	if waited := second.Sub(first); waited < interval {
		t.Errorf("the second commit finished %v after the first append, before the commit interval (%v)", waited, interval)
	}
	if apart := third.Sub(second); apart > interval/3 {
		t.Errorf("records 2 and 3, queued within one interval, committed %v apart: not in one commit", apart)
	}
	if got, err := s.Latest("r", 5); err != nil || len(got) != 3 {
		t.Fatalf("Latest = %d records, %v; want all 3", len(got), err)
	}
}
