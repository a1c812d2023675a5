package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

// subprocessModes maps an environment variable to a function that the test
// binary runs instead of the tests when the variable is set: the tests that
// need a second process (a lock holder, a writer to SIGKILL, a full disk)
// start this binary again with it. Each file registers its own in init.
var subprocessModes = map[string]func(){}

func TestMain(m *testing.M) {
	for env, run := range subprocessModes {
		if os.Getenv(env) != "" {
			run()
			os.Exit(0)
		}
	}
	goleak.VerifyTestMain(m)
}

// testLogger sends store logs to the test log, so a failure shows them.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ensureT(t testing.TB, s *Store, room string) RoomState {
	t.Helper()
	st, err := s.EnsureRoom(room)
	if err != nil {
		t.Fatalf("EnsureRoom(%q): %v", room, err)
	}
	return st
}

const waitLimit = 10 * time.Second

// appendWait appends with the store's seq and waits for durability.
func appendWait(t testing.TB, s *Store, room string, rec Record) (Record, error) {
	t.Helper()
	type res struct {
		rec Record
		err error
	}
	ch := make(chan res, 1)
	s.AppendNext(room, rec, func(r Record, err error) { ch <- res{r, err} })
	select {
	case r := <-ch:
		return r.rec, r.err
	case <-time.After(waitLimit):
		t.Fatalf("append to %q not done after %s", room, waitLimit)
		return Record{}, nil
	}
}

func mustAppend(t testing.TB, s *Store, room string, rec Record) Record {
	t.Helper()
	r, err := appendWait(t, s, room, rec)
	if err != nil {
		t.Fatalf("append %+v: %v", rec, err)
	}
	return r
}

func msg(member, id string) Record {
	return Record{TS: time.Now().UnixMilli(), MemberID: member, ClientID: id, Text: "text of " + id}
}

func waitErr(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("callback not called after %s", waitLimit)
		return nil
	}
}

func seqs(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAppendReadBackEveryField(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	st := ensureT(t, s, "lobby")
	if st.Seq != 0 || len(st.Epoch) != 32 || st.Name != "lobby" {
		t.Fatalf("new room state = %+v, want seq 0 and a 32-hex-char epoch", st)
	}
	want := Record{Seq: 1, TS: 1700000000123, MemberID: "m-1", ClientID: "c-1",
		Text: "héllo 👋\nsecond line", Name: "Zoë", Avatar: "builtin:cat"}
	done := make(chan error, 1)
	s.Append("lobby", want, func(err error) { done <- err })
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
	got, err := s.Latest("lobby", 10)
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("Latest = %+v, %v; want [%+v]", got, err, want)
	}
	found, ok, err := s.LookupID("lobby", "m-1", "c-1")
	if err != nil || !ok || found != want {
		t.Fatalf("LookupID = %+v %v %v", found, ok, err)
	}
	if seq, _ := s.Seq("lobby"); seq != 1 {
		t.Fatalf("Seq = %d, want 1", seq)
	}
}

func TestAppendRejectsSeqOutOfOrder(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ensureT(t, s, "r")
	done := make(chan error, 3)
	s.Append("r", Record{Seq: 2, MemberID: "a", ClientID: "x"}, func(err error) { done <- err })
	if err := waitErr(t, done); !errors.Is(err, ErrSeqOutOfOrder) {
		t.Fatalf("seq 2 into an empty room: err = %v, want ErrSeqOutOfOrder", err)
	}
	// A refused record takes no seq: 1 is still next.
	s.Append("r", Record{Seq: 1, MemberID: "a", ClientID: "x"}, func(err error) { done <- err })
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
	s.Append("r", Record{Seq: 1, MemberID: "a", ClientID: "y"}, func(err error) { done <- err })
	if err := waitErr(t, done); !errors.Is(err, ErrSeqOutOfOrder) {
		t.Fatalf("seq 1 twice: err = %v, want ErrSeqOutOfOrder", err)
	}
}

func TestWriteToUnknownRoomFails(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	_, err := appendWait(t, s, "nowhere", msg("a", "1"))
	if !errors.Is(err, ErrUnknownRoom) {
		t.Fatalf("err = %v, want ErrUnknownRoom", err)
	}
	done := make(chan error, 1)
	s.PutMember("nowhere", MemberRecord{ID: "a", Name: "A"}, func(err error) { done <- err })
	if err := waitErr(t, done); !errors.Is(err, ErrUnknownRoom) {
		t.Fatalf("PutMember err = %v, want ErrUnknownRoom", err)
	}
	if _, err := s.EnsureRoom(""); err == nil {
		t.Fatal("EnsureRoom(\"\") succeeded")
	}
}

// holdCommitter stalls the committer inside a callback (callbacks run on
// it), so that the test controls what is queued for the next batch.
func holdCommitter(t *testing.T, s *Store, room string) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	s.AppendNext(room, msg("holder", fmt.Sprint(time.Now().UnixNano())), func(_ Record, err error) {
		close(entered)
		<-gate
	})
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatal("committer never ran the holding callback")
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}

func TestGroupCommitWritesQueuedRequestsInOneTransactionInOrder(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ensureT(t, s, "r")
	release := holdCommitter(t, s, "r")
	before := s.Stats().Commits

	// While a commit is "in flight", queue appends, member writes and
	// explicit-seq appends; they must land in one transaction, and their
	// callbacks must run in submission order.
	var mu sync.Mutex
	var order []string
	note := func(what string) { mu.Lock(); order = append(order, what); mu.Unlock() }
	var want []string
	all := make(chan struct{}, 100)
	for i := range 30 {
		switch i % 3 {
		case 0:
			name := fmt.Sprintf("next-%d", i)
			want = append(want, name)
			s.AppendNext("r", msg("a", name), func(r Record, err error) {
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				note(name)
				all <- struct{}{}
			})
		case 1:
			name := fmt.Sprintf("member-%d", i)
			want = append(want, name)
			s.PutMember("r", MemberRecord{ID: name, Name: name}, func(err error) {
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				note(name)
				all <- struct{}{}
			})
		case 2:
			name := fmt.Sprintf("seq-%d", i)
			want = append(want, name)
			// Seqs 2, 3, ... follow the holder (seq 1) and the AppendNext
			// before them: the i-th request of kind 0 or 2 gets seq 2+k.
			seq := uint64(2 + 2*(i/3) + 1)
			s.Append("r", Record{Seq: seq, MemberID: "b", ClientID: name}, func(err error) {
				if err != nil {
					t.Errorf("%s (seq %d): %v", name, seq, err)
				}
				note(name)
				all <- struct{}{}
			})
		}
	}
	if q := s.Stats().Queued; q != 30 {
		t.Fatalf("queued = %d, want 30 while the committer is held", q)
	}
	release()
	for range 30 {
		select {
		case <-all:
		case <-time.After(waitLimit):
			t.Fatal("callbacks missing")
		}
	}
	if got := s.Stats().Commits - before; got != 1 {
		t.Errorf("30 queued requests took %d commits, want 1", got)
	}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("callback order\n got %v\nwant %v", order, want)
	}
	recs, complete, err := s.After("r", 0, 0)
	if err != nil || !complete || !equalSeqs(seqs(recs), seqRange(1, 21)) {
		t.Fatalf("After(0) = %v complete=%v err=%v", seqs(recs), complete, err)
	}
}

func TestBatchSizeIsBounded(t *testing.T) {
	s := openT(t, t.TempDir(), Options{MaxBatch: 10})
	ensureT(t, s, "r")
	release := holdCommitter(t, s, "r")
	before := s.Stats().Commits
	var wg sync.WaitGroup
	wg.Add(35)
	for i := range 35 {
		s.AppendNext("r", msg("a", fmt.Sprint(i)), func(_ Record, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	release()
	wg.Wait()
	if got := s.Stats().Commits - before; got != 4 {
		t.Errorf("35 requests with MaxBatch 10 took %d commits, want 4", got)
	}
}

func TestFullQueueBlocksAppendUntilTheCommitterCatchesUp(t *testing.T) {
	s := openT(t, t.TempDir(), Options{QueueSize: 4})
	ensureT(t, s, "r")
	release := holdCommitter(t, s, "r")
	var wg sync.WaitGroup
	wg.Add(5)
	cb := func(_ Record, err error) {
		if err != nil {
			t.Error(err)
		}
		wg.Done()
	}
	for i := range 4 {
		s.AppendNext("r", msg("a", fmt.Sprint(i)), cb)
	}
	returned := make(chan struct{})
	go func() {
		s.AppendNext("r", msg("a", "fifth"), cb)
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("Append returned although the queue was full and the committer held")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case <-returned:
	case <-time.After(waitLimit):
		t.Fatal("Append still blocked after the committer was released")
	}
	wg.Wait()
	if seq, _ := s.Seq("r"); seq != 6 {
		t.Fatalf("seq = %d, want 6", seq)
	}
}

// TryAppend never waits: with the queue full it says so at once, and the
// record it refused is neither stored nor reported.
func TestTryAppendRefusesWhenTheQueueIsFull(t *testing.T) {
	s := openT(t, t.TempDir(), Options{QueueSize: 2})
	ensureT(t, s, "r")
	release := holdCommitter(t, s, "r") // seq 1
	done := make(chan error, 3)
	cb := func(err error) { done <- err }
	seq := uint64(1)
	for i := range 2 {
		seq++
		r := msg("a", fmt.Sprint(i))
		r.Seq = seq
		if !s.TryAppend("r", r, cb) {
			t.Fatalf("TryAppend %d refused with room in the queue", i)
		}
	}
	refused := msg("a", "refused")
	refused.Seq = seq + 1
	if s.TryAppend("r", refused, func(error) { t.Error("callback of a refused record ran") }) {
		t.Fatal("TryAppend accepted a record with the queue full and the committer held")
	}
	release()
	for range 2 {
		if err := waitErr(t, done); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := s.LookupID("r", "a", "refused"); ok {
		t.Error("the refused record was stored")
	}
	if !s.TryAppend("r", refused, cb) {
		t.Fatal("TryAppend refused with the queue drained")
	}
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestRetentionByCount(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{History: 10})
	ensureT(t, s, "r")
	for i := 1; i <= 25; i++ {
		mustAppend(t, s, "r", msg("a", fmt.Sprint(i)))
	}
	all, err := s.Latest("r", 0)
	if err != nil || !equalSeqs(seqs(all), seqRange(16, 25)) {
		t.Fatalf("retained %v (%v), want 16..25", seqs(all), err)
	}
	if _, ok, _ := s.LookupID("r", "a", "15"); ok {
		t.Error("pruned message 15 still in the dedup index")
	}
	if r, ok, _ := s.LookupID("r", "a", "16"); !ok || r.Seq != 16 {
		t.Errorf("retained message 16: LookupID = %+v, %v", r, ok)
	}
	// The dedup index holds exactly the retained messages.
	if n := countIDs(t, s, "r"); n != 10 {
		t.Errorf("dedup index has %d entries, want 10", n)
	}
	// An id whose message was pruned may be accepted again (the spec
	// promises dedup only for as long as the message is retained).
	if r := mustAppend(t, s, "r", msg("a", "1")); r.Seq != 26 {
		t.Errorf("re-used pruned id got seq %d, want 26", r.Seq)
	}
	if s.Stats().Pruned != 16 {
		t.Errorf("pruned counter = %d, want 16", s.Stats().Pruned)
	}

	// Reopened with a smaller History, the store applies it at once, not
	// only at the room's next append.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{History: 4})
	if recs, _ := s.Latest("r", 0); !equalSeqs(seqs(recs), seqRange(23, 26)) {
		t.Errorf("after reopening with History 4: %v, want 23..26", seqs(recs))
	}
	if n := countIDs(t, s, "r"); n != 4 {
		t.Errorf("dedup index has %d entries, want 4", n)
	}
}

func TestAfterCompleteness(t *testing.T) {
	s := openT(t, t.TempDir(), Options{History: 10})
	ensureT(t, s, "empty")
	ensureT(t, s, "r")
	for i := 1; i <= 25; i++ {
		mustAppend(t, s, "r", msg("a", fmt.Sprint(i)))
	}
	cases := []struct {
		name     string
		room     string
		seq      uint64
		limit    int
		want     []uint64
		complete bool
	}{
		{"empty room from 0", "empty", 0, 50, nil, true},
		{"empty room, seq beyond latest", "empty", 3, 50, nil, false},
		{"unknown room from 0", "nosuch", 0, 50, nil, true},
		{"unknown room, seq 4", "nosuch", 4, 50, nil, false},
		{"seq 0 after pruning", "r", 0, 50, seqRange(16, 25), false},
		{"one before the retention boundary", "r", 14, 50, seqRange(16, 25), false},
		{"exactly at the retention boundary", "r", 15, 50, seqRange(16, 25), true},
		{"inside retention", "r", 20, 50, seqRange(21, 25), true},
		{"at latest", "r", 25, 50, nil, true},
		{"beyond latest", "r", 26, 50, nil, false},
		{"cut by limit", "r", 15, 4, seqRange(16, 19), false},
		{"limit exactly enough", "r", 21, 4, seqRange(22, 25), true},
		{"no limit", "r", 17, 0, seqRange(18, 25), true},
	}
	for _, c := range cases {
		recs, complete, err := s.After(c.room, c.seq, c.limit)
		if err != nil || complete != c.complete || !equalSeqs(seqs(recs), c.want) {
			t.Errorf("%s: After(%q, %d, %d) = %v complete=%v err=%v; want %v complete=%v",
				c.name, c.room, c.seq, c.limit, seqs(recs), complete, err, c.want, c.complete)
		}
	}
	latest, err := s.Latest("r", 3)
	if err != nil || !equalSeqs(seqs(latest), seqRange(23, 25)) {
		t.Errorf("Latest(3) = %v, %v", seqs(latest), err)
	}
	if l, err := s.Latest("empty", 3); err != nil || len(l) != 0 {
		t.Errorf("Latest on an empty room = %v, %v", l, err)
	}
}

func TestRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	{
		s := openT(t, dir, Options{})
		ensureT(t, s, "quiet")
		ensureT(t, s, "busy")
		for i := 1; i <= 3; i++ {
			for _, room := range []string{"quiet", "busy"} {
				r := msg("a", fmt.Sprint(i))
				r.TS = old
				mustAppend(t, s, room, r)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openT(t, dir, Options{MaxAge: time.Hour, PruneInterval: 20 * time.Millisecond})

	// A new append prunes its own room at once.
	fresh := mustAppend(t, s, "busy", msg("a", "fresh"))
	if recs, _ := s.Latest("busy", 0); !equalSeqs(seqs(recs), []uint64{4}) || fresh.Seq != 4 {
		t.Fatalf("busy room keeps %v after a fresh append, want only [4]", seqs(recs))
	}
	// A quiet room is pruned by the periodic sweep.
	deadline := time.Now().Add(waitLimit)
	for {
		recs, err := s.Latest("quiet", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("quiet room still holds %v after %s", seqs(recs), waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok, _ := s.LookupID("quiet", "a", "2"); ok {
		t.Error("age-pruned message still in the dedup index")
	}
	if n := countIDs(t, s, "quiet"); n != 0 {
		t.Errorf("dedup index of the quiet room has %d entries, want 0", n)
	}
	// The seq survives pruning; a resume from before the pruned messages is
	// not complete, one from the latest seq is.
	if seq, _ := s.Seq("quiet"); seq != 3 {
		t.Errorf("seq after pruning = %d, want 3", seq)
	}
	if _, complete, _ := s.After("quiet", 1, 50); complete {
		t.Error("After(1) complete although 2 and 3 were pruned")
	}
	if _, complete, _ := s.After("quiet", 3, 50); !complete {
		t.Error("After(latest) not complete")
	}
	// Once nothing is old, the sweeper finds nothing to do and writes
	// nothing (an idle relay does not fsync every PruneInterval).
	for s.Stats().Pruned < 6 { // counters follow the commit that the reads above saw
		if time.Now().After(deadline) {
			t.Fatalf("pruned counter = %d, want 6", s.Stats().Pruned)
		}
		time.Sleep(time.Millisecond)
	}
	commits := s.Stats().Commits
	time.Sleep(5 * 20 * time.Millisecond)
	if c := s.Stats().Commits; c != commits {
		t.Errorf("idle sweeps made %d commits", c-commits)
	}
	r := mustAppend(t, s, "quiet", msg("a", "2")) // the pruned id is free again
	if r.Seq != 4 {
		t.Errorf("append after pruning got seq %d, want 4", r.Seq)
	}
}

func TestConcurrentEnsureRoomAgreesOnOneEpoch(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	const n = 8
	states := make(chan RoomState, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			st, err := s.EnsureRoom("new")
			if err != nil {
				t.Error(err)
			}
			states <- st
		})
	}
	wg.Wait()
	close(states)
	var epoch string
	for st := range states {
		if epoch == "" {
			epoch = st.Epoch
		}
		if st.Epoch != epoch || st.Epoch == "" {
			t.Fatalf("EnsureRoom calls disagree: %q vs %q", st.Epoch, epoch)
		}
	}
}

func TestDedupAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	ensureT(t, s, "r")
	first := mustAppend(t, s, "r", Record{TS: 111, MemberID: "alice", ClientID: "m1", Text: "hi"})
	mustAppend(t, s, "r", Record{TS: 112, MemberID: "alice", ClientID: "m2", Text: "there"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	got, ok, err := s.LookupID("r", "alice", "m1")
	if err != nil || !ok || got != first {
		t.Fatalf("LookupID after reopen = %+v %v %v, want %+v", got, ok, err, first)
	}
	// A resend that slipped past the caller's own check is refused by the
	// store with the original record (same seq and ts for the ack).
	dup, err := appendWait(t, s, "r", Record{TS: 999, MemberID: "alice", ClientID: "m1", Text: "hi"})
	var de *DuplicateError
	if !errors.As(err, &de) || !errors.Is(err, ErrDuplicateID) || de.Existing != first || dup != first {
		t.Fatalf("resend after reopen: rec %+v err %v; want DuplicateError with %+v", dup, err, first)
	}
	// Ids are scoped per member.
	bob := mustAppend(t, s, "r", Record{TS: 113, MemberID: "bob", ClientID: "m1", Text: "me too"})
	if bob.Seq != 3 {
		t.Errorf("bob's m1 got seq %d, want 3", bob.Seq)
	}
	if _, ok, _ := s.LookupID("r", "alice", "m3"); ok {
		t.Error("LookupID found an id never sent")
	}
	// Member ids are length-prefixed in the index: ("a", "\x00b") and
	// ("a\x00", "b") are different pairs.
	mustAppend(t, s, "r", Record{MemberID: "a", ClientID: "\x00b"})
	if r, err := appendWait(t, s, "r", Record{MemberID: "a\x00", ClientID: "b"}); err != nil {
		t.Errorf("distinct pair treated as duplicate: %+v %v", r, err)
	}
	// Duplicates inside one batch are caught too.
	release := holdCommitter(t, s, "r")
	ch := make(chan error, 2)
	s.AppendNext("r", Record{MemberID: "carol", ClientID: "x"}, func(_ Record, err error) { ch <- err })
	s.AppendNext("r", Record{MemberID: "carol", ClientID: "x"}, func(_ Record, err error) { ch <- err })
	release()
	if err := waitErr(t, ch); err != nil {
		t.Errorf("first of a batch pair: %v", err)
	}
	if err := waitErr(t, ch); !errors.Is(err, ErrDuplicateID) {
		t.Errorf("second of a batch pair: %v, want ErrDuplicateID", err)
	}
}

func TestEpochAndSeqSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	a := ensureT(t, s, "a")
	b := ensureT(t, s, "b")
	if a.Epoch == b.Epoch {
		t.Fatalf("two rooms share epoch %s", a.Epoch)
	}
	for i := range 3 {
		mustAppend(t, s, "a", msg("m", fmt.Sprint(i)))
	}
	if again := ensureT(t, s, "a"); again.Epoch != a.Epoch || again.Seq != 3 {
		t.Fatalf("EnsureRoom on an existing room = %+v, want epoch %s seq 3", again, a.Epoch)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	rooms, err := s.Rooms()
	if err != nil || len(rooms) != 2 {
		t.Fatalf("Rooms = %+v, %v", rooms, err)
	}
	if rooms[0].Name != "a" || rooms[0].Epoch != a.Epoch || rooms[0].Seq != 3 {
		t.Errorf("room a after reopen = %+v, want epoch %s seq 3", rooms[0], a.Epoch)
	}
	if rooms[1].Name != "b" || rooms[1].Epoch != b.Epoch || rooms[1].Seq != 0 {
		t.Errorf("room b after reopen = %+v, want epoch %s seq 0", rooms[1], b.Epoch)
	}
	// The reopened store continues the seq.
	done := make(chan error, 1)
	s.Append("a", Record{Seq: 4, MemberID: "m", ClientID: "after"}, func(err error) { done <- err })
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Append seq 4 after reopen: %v", err)
	}
	if r := mustAppend(t, s, "a", msg("m", "next")); r.Seq != 5 {
		t.Errorf("AppendNext after reopen got seq %d, want 5", r.Seq)
	}
}

func TestMembersPutDeleteSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	ensureT(t, s, "r")
	put := func(m MemberRecord) {
		t.Helper()
		ch := make(chan error, 1)
		s.PutMember("r", m, func(err error) { ch <- err })
		if err := waitErr(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	alice := MemberRecord{ID: "m-a", Name: "Alice", Avatar: "builtin:default", KeyHash: strings.Repeat("ab", 32), Since: 1000}
	bob := MemberRecord{ID: "m-b", Name: "Bob", KeyHash: strings.Repeat("cd", 32), Since: 2000}
	carol := MemberRecord{ID: "m-c", Name: "Carol", KeyHash: strings.Repeat("ef", 32), Since: 3000}
	put(alice)
	put(bob)
	put(carol)
	bob.Name = "Robert" // a returning member with a new name replaces the record
	put(bob)
	ch := make(chan error, 1)
	s.DeleteMember("r", carol.ID, func(err error) { ch <- err })
	if err := waitErr(t, ch); err != nil {
		t.Fatal(err)
	}
	s.DeleteMember("r", "never-there", nil) // nil callback, absent member: no error, no panic
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	st, ok, err := s.Room("r")
	if err != nil || !ok {
		t.Fatalf("Room: %v %v", ok, err)
	}
	if len(st.Members) != 2 || st.Members[0] != alice || st.Members[1] != bob {
		t.Fatalf("members after reopen = %+v, want [%+v %+v]", st.Members, alice, bob)
	}
	// Bad requests fail alone, not the batch they share with good ones.
	release := holdCommitter(t, s, "r")
	ch2 := make(chan error, 4)
	s.PutMember("r", MemberRecord{Name: "no id"}, func(err error) { ch2 <- err })
	s.PutMember("r", MemberRecord{ID: strings.Repeat("x", 40000)}, func(err error) { ch2 <- err })
	s.AppendNext("r", Record{MemberID: "m", ClientID: strings.Repeat("y", 40000)}, func(_ Record, err error) { ch2 <- err })
	s.PutMember("r", carol, func(err error) { ch2 <- err })
	release()
	for i, want := range []bool{false, false, false, true} {
		if err := waitErr(t, ch2); (err == nil) != want {
			t.Errorf("request %d of the mixed batch: err = %v, want success %v", i, err, want)
		}
	}
	if st, _, _ := s.Room("r"); len(st.Members) != 3 {
		t.Errorf("after the mixed batch: %d members, want 3", len(st.Members))
	}
}

func TestConcurrentAppendsToSeveralRooms(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	rooms := []string{"r0", "r1", "r2", "r3"}
	for _, r := range rooms {
		ensureT(t, s, r)
	}
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for _, room := range rooms {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last uint64
				for i := range each {
					r, err := appendWait(t, s, room, msg(fmt.Sprint("w", w), fmt.Sprint(i)))
					if err != nil {
						t.Error(err)
						return
					}
					if r.Seq <= last {
						t.Errorf("%s writer %d: seq %d after %d", room, w, r.Seq, last)
					}
					last = r.Seq
				}
			}()
		}
	}
	wg.Wait()
	for _, room := range rooms {
		recs, complete, err := s.After(room, 0, 0)
		if err != nil || !complete || !equalSeqs(seqs(recs), seqRange(1, writers*each)) {
			t.Fatalf("%s: %d records complete=%v err=%v", room, len(recs), complete, err)
		}
		seen := map[string]bool{}
		for _, r := range recs {
			k := r.MemberID + "/" + r.ClientID
			if seen[k] {
				t.Errorf("%s: %s stored twice", room, k)
			}
			seen[k] = true
		}
	}
}

func TestCloseDrainsQueuedWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ensureT(t, s, "r")
	const n = 500
	var mu sync.Mutex
	var got []uint64
	var failed int
	for i := range n {
		s.AppendNext("r", msg("a", fmt.Sprint(i)), func(r Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
			}
			got = append(got, r.Seq)
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returned, so every callback has run.
	mu.Lock()
	if failed != 0 || !equalSeqs(got, seqRange(1, n)) {
		t.Fatalf("after Close: %d callbacks, %d failed", len(got), failed)
	}
	mu.Unlock()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Writes after Close fail (asynchronously), reads say closed.
	ch := make(chan error, 1)
	s.Append("r", Record{Seq: n + 1}, func(err error) { ch <- err })
	if err := waitErr(t, ch); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := s.EnsureRoom("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("EnsureRoom after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.After("r", 0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("After after Close: %v, want ErrClosed", err)
	}

	s = openT(t, dir, Options{})
	if seq, _ := s.Seq("r"); seq != n {
		t.Fatalf("reopened seq = %d, want %d", seq, n)
	}
}

func TestFailedCommitFailsItsBatchAndTheStoreGoesOn(t *testing.T) {
	// MaxSize makes bbolt refuse to grow the file: the same path as a full disk.
	s := openT(t, t.TempDir(), Options{MaxSize: 256 << 10, History: 5})
	ensureT(t, s, "r")
	mustAppend(t, s, "r", msg("a", "small-1"))

	// One batch that cannot fit: every record in it fails.
	release := holdCommitter(t, s, "r")
	big := strings.Repeat("x", 64<<10)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		s.AppendNext("r", Record{MemberID: "a", ClientID: fmt.Sprint("big-", i), Text: big},
			func(_ Record, err error) { errs <- err })
	}
	release()
	for range n {
		if err := waitErr(t, errs); err == nil || !strings.Contains(err.Error(), "maximum size") {
			t.Fatalf("oversized batch: err = %v, want a size error", err)
		}
	}
	if f := s.Stats().Failed; f != n {
		t.Errorf("failed counter = %d, want %d", f, n)
	}
	// Nothing of the failed batch is visible, and its seqs were not taken.
	if _, ok, _ := s.LookupID("r", "a", "big-0"); ok {
		t.Error("a record of the failed batch is in the index")
	}
	// The store keeps serving.
	r := mustAppend(t, s, "r", msg("a", "small-2"))
	holder := 1 // holdCommitter appended one record
	if want := uint64(2 + holder); r.Seq != want {
		t.Errorf("append after the failure got seq %d, want %d", r.Seq, want)
	}
	recs, complete, err := s.After("r", 0, 0)
	if err != nil || !complete || !equalSeqs(seqs(recs), seqRange(1, 3)) {
		t.Errorf("after failure: After(0) = %v complete=%v err=%v", seqs(recs), complete, err)
	}
}

func countIDs(t testing.TB, s *Store, room string) int {
	t.Helper()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		n = roomBucket(tx, room).Bucket(bktIDs).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenErrors(t *testing.T) {
	t.Run("data dir is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(f, Options{})
		if err == nil || !strings.Contains(err.Error(), "cannot create the data dir") || !strings.Contains(err.Error(), "--data-dir") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("database path is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), "move it away") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("garbage bytes", func(t *testing.T) {
		for _, size := range []int{100, 64 << 10} {
			dir := t.TempDir()
			garbage := make([]byte, size)
			for i := range garbage {
				garbage[i] = byte(i*7 + 3)
			}
			if err := os.WriteFile(filepath.Join(dir, FileName), garbage, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "is not a Heartline database or is damaged") ||
				!strings.Contains(err.Error(), "move it aside to start with an empty history") {
				t.Fatalf("%d garbage bytes: err = %v", size, err)
			}
			// The file is left alone for the person to inspect.
			if b, _ := os.ReadFile(filepath.Join(dir, FileName)); len(b) != size {
				t.Fatalf("Open changed the damaged file: %d bytes, was %d", len(b), size)
			}
		}
	})
	t.Run("another program's bbolt file", func(t *testing.T) {
		dir := t.TempDir()
		writeForeignBolt(t, filepath.Join(dir, FileName))
		_, err := Open(dir, Options{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not a Heartline one") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestOpenLockedInThisProcess(t *testing.T) {
	// flock(2) locks belong to the open file description, so a second open
	// of the same file conflicts even inside one process on Linux; the
	// subprocess test below shows the same across processes.
	dir := t.TempDir()
	openT(t, dir, Options{})
	start := time.Now()
	_, err := Open(dir, Options{LockWait: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "in use by another heartline-relay") ||
		!strings.Contains(err.Error(), "use another --data-dir") {
		t.Fatalf("second Open: %v", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("gave up after %s, before the configured lock wait", waited)
	}
}

func TestCloseWhileAppendBlockedOnAFullQueue(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{QueueSize: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ensureT(t, s, "r")
	release := holdCommitter(t, s, "r")
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := map[string]error{}
	cb := func(id string) func(Record, error) {
		return func(_ Record, err error) { mu.Lock(); errs[id] = err; mu.Unlock(); wg.Done() }
	}
	wg.Add(3)
	s.AppendNext("r", msg("a", "1"), cb("1"))
	s.AppendNext("r", msg("a", "2"), cb("2"))
	blocked := make(chan struct{})
	go func() { s.AppendNext("r", msg("a", "3"), cb("3")); close(blocked) }()
	time.Sleep(20 * time.Millisecond) // usually enough to be blocked in the send; either way is checked below
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while writes were still queued behind a held commit")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close deadlocked with an Append blocked on the full queue")
	}
	<-blocked
	wg.Wait()
	// The two queued appends are durable. The third either got into the
	// queue before Close (durable) or came after it (ErrClosed): both are
	// right, as long as its callback says which.
	durable := 0
	for id, err := range errs {
		switch {
		case err == nil:
			durable++
		case id != "3" || !errors.Is(err, ErrClosed):
			t.Errorf("append %s: %v", id, err)
		}
	}
	s = openT(t, dir, Options{})
	if seq, _ := s.Seq("r"); seq != uint64(1+durable) { // the holder plus the durable ones
		t.Errorf("after reopen seq = %d, want %d", seq, 1+durable)
	}
}

func TestBeforePagesBackwards(t *testing.T) {
	s := openT(t, t.TempDir(), Options{History: 10})
	ensureT(t, s, "r")
	for i := 1; i <= 25; i++ {
		mustAppend(t, s, "r", msg("a", fmt.Sprint(i)))
	}
	cases := []struct {
		name   string
		room   string
		before uint64
		n      int
		want   []uint64
	}{
		{"unknown room", "nosuch", 5, 10, nil},
		{"the newest page", "r", 26, 4, seqRange(22, 25)},
		{"beyond latest", "r", 100, 3, seqRange(23, 25)},
		{"in the middle", "r", 20, 3, seqRange(17, 19)},
		{"down to the retention boundary", "r", 18, 10, seqRange(16, 17)},
		{"below what is retained", "r", 16, 10, nil},
		{"before 1", "r", 1, 10, nil},
	}
	for _, c := range cases {
		recs, err := s.Before(c.room, c.before, c.n)
		if err != nil || !equalSeqs(seqs(recs), c.want) {
			t.Errorf("%s: Before(%q, %d, %d) = %v, %v; want %v", c.name, c.room, c.before, c.n, seqs(recs), err, c.want)
		}
	}
}
