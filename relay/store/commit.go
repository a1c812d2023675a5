package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

type reqKind uint8

const (
	kindAppend     reqKind = iota // explicit seq, done func(error)
	kindAppendNext                // store assigns the seq, doneRec func(Record, error)
	kindPutMember
	kindDeleteMember
	kindEnsureRoom
)

// request is one queued write. The committer fills err/out and then runs the
// callback.
type request struct {
	kind     reqKind
	room     string
	rec      Record
	member   MemberRecord
	memberID string

	done    func(error)
	doneRec func(Record, error)
	ensure  chan error // buffered (1)

	err error
	out Record
}

func (r *request) finish() {
	switch {
	case r.done != nil:
		r.done(r.err)
	case r.doneRec != nil:
		r.doneRec(r.out, r.err)
	case r.ensure != nil:
		r.ensure <- r.err
	}
}

// Append queues rec for the next group commit. rec.Seq must be the room's
// latest seq + 1 counting records queued before it (else ErrSeqOutOfOrder);
// a (MemberID, ClientID) already stored fails with a *DuplicateError. done(err)
// runs after the record is durable (fsync'd) or failed, on the committer
// goroutine, in submission order; it must not block. done may be nil.
//
// A failed record takes no seq: after any error the caller must continue from
// Seq(room)+1, and records it queued meanwhile with higher seqs fail too.
// AppendNext avoids that bookkeeping by letting the store pick the seq.
//
// Append blocks only while the queue (Options.QueueSize) is full, i.e. until
// the running commit finishes and the committer takes the next batch. After
// Close, done(ErrClosed) runs at once on a new goroutine.
func (s *Store) Append(room string, rec Record, done func(error)) {
	s.enqueue(&request{kind: kindAppend, room: room, rec: rec, done: done})
}

// TryAppend is Append that never waits: when the commit queue is full (the
// disk is behind) it returns false at once and done is never called. The
// relay uses it so that a connection's reader never waits for the disk.
func (s *Store) TryAppend(room string, rec Record, done func(error)) bool {
	return s.submit(&request{kind: kindAppend, room: room, rec: rec, done: done}, false)
}

// AppendNext is Append with the seq assigned by the store at commit time
// (rec.Seq is ignored): done receives the record as stored, with its seq. A
// failed record takes no seq, so later records are unaffected. A duplicate
// (member, client id) gets a *DuplicateError and the record stored first, so
// the caller can repeat that ack.
func (s *Store) AppendNext(room string, rec Record, done func(Record, error)) {
	s.enqueue(&request{kind: kindAppendNext, room: room, rec: rec, doneRec: done})
}

// PutMember stores (inserts or replaces) a member of room, through the same
// committer as Append; done may be nil.
func (s *Store) PutMember(room string, m MemberRecord, done func(error)) {
	s.enqueue(&request{kind: kindPutMember, room: room, member: m, done: done})
}

// DeleteMember removes a member of room (no error if absent); done may be nil.
// The member's messages and their dedup entries stay until retention drops them.
func (s *Store) DeleteMember(room, memberID string, done func(error)) {
	s.enqueue(&request{kind: kindDeleteMember, room: room, memberID: memberID, done: done})
}

func (s *Store) enqueue(r *request) { s.submit(r, true) }

// submit queues r for the committer. With wait it blocks while the queue is
// full; without, it returns false instead. A closed store fails r (true).
func (s *Store) submit(r *request, wait bool) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		r.err = ErrClosed
		if r.ensure != nil {
			r.finish() // buffered channel: never blocks
			return true
		}
		// Not on the caller's goroutine: a callback that hands the result
		// back to the caller (a channel the caller reads) must not deadlock.
		go r.finish()
		return true
	}
	if wait {
		s.queue <- r
		return true
	}
	select {
	case s.queue <- r:
		return true
	default:
		return false
	}
}

// committer owns all writes: it takes everything queued (up to MaxBatch),
// writes it in one transaction, then runs the callbacks in order. It starts
// a commit at most every CommitInterval.
func (s *Store) committer() {
	defer close(s.committerDone)
	var tick <-chan time.Time
	if s.opts.MaxAge > 0 {
		t := time.NewTicker(s.opts.PruneInterval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]*request, 0, s.opts.MaxBatch)
	var lastStart time.Time
	// recheck fires while the last write failed (see WriteErr).
	recheck := time.NewTimer(s.opts.RecheckInterval)
	defer recheck.Stop()
	var recheckC <-chan time.Time
	armRecheck := func() {
		switch failing := s.WriteErr() != nil; {
		case failing && recheckC == nil:
			recheck.Reset(s.opts.RecheckInterval)
			recheckC = recheck.C
		case !failing && recheckC != nil:
			recheck.Stop()
			recheckC = nil
		}
	}
	recheck.Stop()
	armRecheck() // Open's prune may have failed
	for {
		select {
		case r, ok := <-s.queue:
			if !ok {
				return // closed and drained
			}
			if wait := s.opts.CommitInterval - time.Since(lastStart); wait > 0 {
				time.Sleep(wait) // whatever arrives meanwhile shares this commit
			}
			batch = append(batch[:0], r)
		fill:
			for len(batch) < s.opts.MaxBatch {
				select {
				case r, ok := <-s.queue:
					if !ok {
						break fill
					}
					batch = append(batch, r)
				default:
					break fill
				}
			}
			lastStart = time.Now()
			s.commit(batch)
			clear(batch) // drop references to callbacks and texts
			armRecheck()
		case <-tick:
			s.pruneAll()
			armRecheck()
		case <-recheckC:
			recheckC = nil
			s.recheck()
			armRecheck()
		}
	}
}

// roomTx caches one room's buckets and seq within a commit.
type roomTx struct {
	name                     string
	meta, msgs, ids, members *bolt.Bucket
	seq                      uint64
	bytes                    int64 // of the room's records (HistoryBytes)
	appended                 bool
}

// softCap is where a store capped at maxSize stops growing rooms: the rest
// is headroom for the commits that still run (pruning rooms, members).
func softCap(maxSize int) int64 {
	return int64(maxSize) - min(int64(maxSize)/8, 32<<20)
}

// atLimit reports whether appending r makes its room prune at least as much
// as it adds: the room holds History messages, or its bytes with r exceed
// HistoryBytes.
func (s *Store) atLimit(rt *roomTx, r *request) bool {
	first, _ := rt.msgs.Cursor().First()
	if first != nil && rt.seq-keySeqOf(first)+1 >= uint64(s.opts.History) {
		return true
	}
	size := int64(len(r.rec.Text) + len(r.rec.MemberID) + len(r.rec.ClientID) + len(r.rec.Name) + len(r.rec.Avatar))
	return s.opts.HistoryBytes > 0 && rt.bytes+size > s.opts.HistoryBytes
}

// recordBytes is what a record costs its room's HistoryBytes: its key and
// its encoded value.
func recordBytes(k, v []byte) int64 { return int64(len(k) + len(v)) }

// bytesOf returns the size of a room's records, reading them once per
// process; the caller must be the committer (or Open before it starts).
func (s *Store) bytesOf(name string, msgs *bolt.Bucket) int64 {
	if n, ok := s.roomBytes[name]; ok {
		return n
	}
	var n int64
	_ = msgs.ForEach(func(k, v []byte) error { n += recordBytes(k, v); return nil })
	s.roomBytes[name] = n
	return n
}

func (s *Store) commit(batch []*request) {
	start := time.Now()
	var appended, pruned int
	open := make(map[string]*roomTx, 1)
	err := s.guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			appended, pruned = 0, 0
			rooms := tx.Bucket(bktRooms)
			clear(open)
			getRoom := func(name string) (*roomTx, error) {
				if rt := open[name]; rt != nil {
					return rt, nil
				}
				rb := rooms.Bucket([]byte(name))
				if rb == nil {
					return nil, fmt.Errorf("%w %q: create it with EnsureRoom first", ErrUnknownRoom, name)
				}
				rt, err := openRoomTx(rb, name)
				if err != nil {
					return nil, err
				}
				rt.bytes = s.bytesOf(name, rt.msgs)
				open[name] = rt
				return rt, nil
			}
			// At the soft cap only rooms at their retention limit grow
			// no further; the rest is refused request by request.
			full := s.opts.MaxSize > 0 && tx.Size() >= softCap(s.opts.MaxSize)
			var buf []byte
			for _, r := range batch {
				r.err, r.out = nil, Record{}
				if r.kind == kindEnsureRoom {
					if err := s.ensureRoomTx(rooms, r.room); err != nil {
						return err
					}
					continue
				}
				rt, err := getRoom(r.room)
				if err != nil {
					r.err = err // this request only; the batch goes on
					continue
				}
				switch r.kind {
				case kindAppend, kindAppendNext:
					if full && !s.atLimit(rt, r) {
						r.err = fmt.Errorf("%w (%d bytes): room %q cannot grow", ErrFull, s.opts.MaxSize, r.room)
						continue
					}
					var err error
					if buf, err = appendTx(rt, r, buf); err != nil {
						return err
					}
					if r.err == nil {
						appended++
					}
				case kindPutMember:
					if r.member.ID == "" || len(r.member.ID) > bolt.MaxKeySize {
						r.err = fmt.Errorf("store: member id must be 1-%d bytes, got %d", bolt.MaxKeySize, len(r.member.ID))
						continue
					}
					v, err := json.Marshal(&r.member)
					if err != nil {
						return err
					}
					if err := rt.members.Put([]byte(r.member.ID), v); err != nil {
						return err
					}
				case kindDeleteMember:
					if err := rt.members.Delete([]byte(r.memberID)); err != nil {
						return err
					}
				}
			}
			now := time.Now()
			for _, rt := range open {
				if !rt.appended {
					continue
				}
				if err := rt.meta.Put(keySeq, seqKey(rt.seq)); err != nil {
					return err
				}
				n, err := s.prune(rt, now)
				pruned += n
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		err = fmt.Errorf("%w (%d bytes): %w", ErrFull, s.opts.MaxSize, err)
	}
	if err != nil {
		err = fmt.Errorf("store: writing %d request(s) to %s failed: %w", len(batch), s.path, err)
		// At the size cap every commit that needs space fails: say so
		// now and then, not at every commit.
		if !errors.Is(err, ErrFull) || time.Since(s.fullLogged) >= fullLogEvery {
			s.log.Error("store commit failed; the affected messages were not acknowledged",
				"err", err, "requests", len(batch))
			if errors.Is(err, ErrFull) {
				s.fullLogged = time.Now()
			}
		}
		for _, r := range batch {
			r.err, r.out = err, Record{}
		}
		s.failed.Add(uint64(len(batch)))
		s.noteWrite(err)
	} else {
		s.noteWrite(nil)
		s.commits.Add(1)
		s.committed.Add(uint64(appended))
		s.pruned.Add(uint64(pruned))
		for name, rt := range open {
			s.roomBytes[name] = rt.bytes
		}
	}
	if d := time.Since(start); d > time.Second {
		s.log.Warn("store commit slow", "took", d, "requests", len(batch), "appended", appended)
	}
	for _, r := range batch {
		r.finish()
	}
}

// appendTx writes r's record into its room within the commit's
// transaction. A problem with this record alone (seq out of order, ids too
// long, a duplicate id) goes to r.err and the batch goes on; the error
// returned fails the whole transaction. buf is scratch space for the
// dedup key, returned for reuse.
func appendTx(rt *roomTx, r *request, buf []byte) ([]byte, error) {
	rec := r.rec
	if r.kind == kindAppendNext {
		rec.Seq = rt.seq + 1
	} else if rec.Seq != rt.seq+1 {
		r.err = fmt.Errorf("%w: room %q got seq %d, next is %d", ErrSeqOutOfOrder, r.room, rec.Seq, rt.seq+1)
		return buf, nil
	}
	buf = idKey(buf[:0], rec.MemberID, rec.ClientID)
	if len(buf) > bolt.MaxKeySize {
		r.err = fmt.Errorf("store: member id and client id are %d bytes, more than %d", len(buf), bolt.MaxKeySize)
		return buf, nil
	}
	if rec.ClientID != "" {
		if v := rt.ids.Get(buf); v != nil {
			old, err := decodeRecord(binary.BigEndian.Uint64(v), rt.msgs.Get(v))
			if err != nil {
				r.err = err
				return buf, nil
			}
			r.err, r.out = &DuplicateError{Existing: old}, old
			return buf, nil
		}
		if err := rt.ids.Put(buf, seqKey(rec.Seq)); err != nil {
			return buf, err
		}
	}
	k, v := seqKey(rec.Seq), encodeRecord(nil, &rec)
	if err := rt.msgs.Put(k, v); err != nil {
		return buf, err
	}
	rt.bytes += recordBytes(k, v)
	rt.seq, rt.appended, r.out = rec.Seq, true, rec
	return buf, nil
}

func openRoomTx(rb *bolt.Bucket, name string) (*roomTx, error) {
	rt := &roomTx{
		name:    name,
		meta:    rb.Bucket(bktMeta),
		msgs:    rb.Bucket(bktMsgs),
		ids:     rb.Bucket(bktIDs),
		members: rb.Bucket(bktMembers),
	}
	if rt.meta == nil || rt.msgs == nil || rt.ids == nil || rt.members == nil {
		return nil, fmt.Errorf("room %q is missing a bucket: %w", name, ErrCorrupt)
	}
	rt.seq = keySeqOf(rt.meta.Get(keySeq))
	return rt, nil
}

func (s *Store) ensureRoomTx(rooms *bolt.Bucket, name string) error {
	if rooms.Bucket([]byte(name)) != nil {
		return nil
	}
	epoch, err := newEpoch()
	if err != nil {
		return err
	}
	rb, err := rooms.CreateBucket([]byte(name))
	if err != nil {
		return err
	}
	for _, b := range [][]byte{bktMeta, bktMsgs, bktIDs, bktMembers} {
		if _, err := rb.CreateBucket(b); err != nil {
			return err
		}
	}
	meta := rb.Bucket(bktMeta)
	if err := meta.Put(keyEpoch, []byte(epoch)); err != nil {
		return err
	}
	if err := meta.Put(keySeq, seqKey(0)); err != nil {
		return err
	}
	created := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixMilli()))
	if err := meta.Put(keyCreated, created); err != nil {
		return err
	}
	s.log.Info("store: room created", "room", name, "epoch", epoch)
	return nil
}

// prune drops the oldest messages of a room beyond History, beyond
// HistoryBytes (but never the newest), and those older than MaxAge,
// together with their dedup entries. Seqs are contiguous and
// only ever removed from the front, so the first key is the oldest.
func (s *Store) prune(rt *roomTx, now time.Time) (dropped int, err error) {
	var cutoffSeq uint64 // delete seq <= cutoffSeq
	if rt.seq > uint64(s.opts.History) {
		cutoffSeq = rt.seq - uint64(s.opts.History)
	}
	var cutoffTS int64 // delete TS < cutoffTS
	if s.opts.MaxAge > 0 {
		cutoffTS = now.Add(-s.opts.MaxAge).UnixMilli()
	}
	c := rt.msgs.Cursor()
	var idbuf []byte
	for k, v := c.First(); k != nil; k, v = c.First() {
		overBytes := s.opts.HistoryBytes > 0 && rt.bytes > s.opts.HistoryBytes && keySeqOf(k) < rt.seq
		if keySeqOf(k) > cutoffSeq && !overBytes {
			ts, ok := recordTS(v)
			if cutoffTS == 0 || (ok && ts >= cutoffTS) {
				return dropped, nil
			}
		}
		rt.bytes -= recordBytes(k, v)
		if member, client, ok := recordIDs(v); ok && len(client) > 0 {
			idbuf = idKey(idbuf[:0], string(member), string(client))
			if err := rt.ids.Delete(idbuf); err != nil {
				return dropped, err
			}
		}
		if err := c.Delete(); err != nil {
			return dropped, err
		}
		dropped++
	}
	return dropped, nil
}

// pruneAll applies retention to every room: by age, for rooms that went
// quiet (they would otherwise keep old messages until their next append),
// and by count, for a store reopened with a smaller History. A read
// transaction finds the rooms that need it first, so an idle relay does not
// fsync every PruneInterval.
func (s *Store) pruneAll() {
	var cutoff int64
	if s.opts.MaxAge > 0 {
		cutoff = time.Now().Add(-s.opts.MaxAge).UnixMilli()
	}
	var stale [][]byte
	err := s.view(func(tx *bolt.Tx) error {
		rooms := tx.Bucket(bktRooms)
		return rooms.ForEachBucket(func(name []byte) error {
			rb := rooms.Bucket(name)
			msgs, meta := rb.Bucket(bktMsgs), rb.Bucket(bktMeta)
			if msgs == nil || meta == nil {
				return nil
			}
			k, v := msgs.Cursor().First()
			if k == nil {
				return nil
			}
			ts, ok := recordTS(v)
			tooOld := cutoff != 0 && ok && ts < cutoff
			tooMany := keySeqOf(meta.Get(keySeq))-keySeqOf(k) >= uint64(s.opts.History)
			tooBig := s.opts.HistoryBytes > 0 && s.bytesOf(string(name), msgs) > s.opts.HistoryBytes
			if tooOld || tooMany || tooBig {
				stale = append(stale, slices.Clone(name))
			}
			return nil
		})
	})
	if err != nil || len(stale) == 0 {
		if err != nil {
			s.log.Error("store: looking for old messages failed; will retry", "err", err)
		}
		return
	}
	var dropped int
	pruned := make(map[string]int64, len(stale))
	err = s.guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			dropped = 0
			rooms := tx.Bucket(bktRooms)
			now := time.Now()
			for _, name := range stale {
				rb := rooms.Bucket(name)
				if rb == nil {
					continue
				}
				rt, err := openRoomTx(rb, string(name))
				if err != nil {
					return err
				}
				rt.bytes = s.bytesOf(rt.name, rt.msgs)
				n, err := s.prune(rt, now)
				pruned[rt.name] = rt.bytes
				dropped += n
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	s.noteWrite(err)
	if err != nil {
		s.log.Error("store: pruning old messages failed; will retry", "err", err)
		return
	}
	s.commits.Add(1)
	s.pruned.Add(uint64(dropped))
	for name, n := range pruned {
		s.roomBytes[name] = n
	}
	s.log.Debug("store: pruned old messages", "count", dropped, "rooms", len(stale))
}
