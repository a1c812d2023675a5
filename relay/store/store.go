// Package store is the relay's durable history: per room an epoch, the latest
// seq, the retained messages, a dedup index of (member, client id) -> seq, and
// the members. Everything lives in one bbolt file, <data dir>/heartline.db.
//
// Writes (Append, AppendNext, PutMember, DeleteMember, EnsureRoom) go through
// one committer goroutine that group-commits: whatever is queued when a
// commit starts (up to Options.MaxBatch) is written in a single bbolt
// transaction, which bbolt fsyncs before it returns; then the done callbacks
// run in submission order. Requests that arrive while a commit is in flight
// wait for the next one, and commits start at most every
// Options.CommitInterval, so the cost of an fsync is shared by every message
// that arrived meanwhile.
//
// Backpressure: the queue holds at most Options.QueueSize requests. When it
// is full, the write methods block until the committer takes the next batch
// (normally one fsync, a few milliseconds); memory never grows without bound.
// A caller that must never block (a connection reader) should keep its own
// bounded count of messages awaiting their ack and refuse beyond it.
//
// Callbacks run on the committer goroutine: they must not block, and must not
// call Close (which waits for the committer) or write to the store while its
// queue may be full (which waits for the committer too).
//
// Reads (After, Latest, LookupID, Rooms, Room, Seq) are bbolt read
// transactions: they see committed data only and do not wait for a commit
// (except briefly when bbolt grows its memory map, which is rare: it doubles).
package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the data dir.
const FileName = "heartline.db"

// Defaults for the zero values of Options.
const (
	DefaultHistory = 1000
	// DefaultHistoryBytes: 1 MiB of records per room, about 65 messages of
	// the longest text (4000 characters of 4 bytes) or 1000 of 1 KiB.
	DefaultHistoryBytes = 1 << 20
	DefaultMaxBatch     = 1024
	// DefaultCommitInterval: at most 200 commits a second, each fsync
	// shared by everything that arrived meanwhile.
	DefaultCommitInterval = 5 * time.Millisecond
	DefaultQueueSize      = 4096
	DefaultLockWait       = time.Second
)

// Options configure a Store. Every zero value means the documented default.
type Options struct {
	// History is the number of messages kept per room; 0 means 1000 (DefaultHistory).
	History int
	// HistoryBytes also prunes a room's oldest messages while its records
	// (encoded, with their keys) take more than this many bytes; 0 means
	// 1 MiB (DefaultHistoryBytes), negative means no byte limit. A room
	// keeps its newest message whatever its size.
	HistoryBytes int64
	// MaxAge prunes messages whose TS is older than this; 0 means no age limit.
	MaxAge time.Duration
	// PruneInterval is how often the committer prunes by age when MaxAge is set;
	// 0 means MaxAge/10, clamped to [1 s, 1 min]. Appends also prune the room
	// they touch, so this only matters for rooms that went quiet.
	PruneInterval time.Duration
	// MaxBatch bounds the records written in one transaction; 0 means 1024.
	MaxBatch int
	// CommitInterval is the least time between the starts of two commits. A
	// write that arrives sooner waits for it, so that a busy store shares
	// each fsync (most of a commit's cost) among more records; a write to an
	// idle store commits at once. 0 means 5 ms (DefaultCommitInterval); a
	// negative value means no wait.
	CommitInterval time.Duration
	// QueueSize bounds the writes waiting for the committer; 0 means 4096.
	// When the queue is full, Append/PutMember/DeleteMember block until the
	// running commit takes the next batch (backpressure instead of unbounded
	// memory): with the defaults that is at most one fsync'd transaction.
	QueueSize int
	// LockWait is how long Open waits for another process to release the
	// file lock before giving up; 0 means 1 s.
	LockWait time.Duration
	// MaxSize caps the database file in bytes; 0 means no cap. Once the
	// data reaches MaxSize less a headroom (an eighth of it, at most
	// 32 MiB), a message to a room that is not yet at its retention limit
	// is refused (its callback gets an error that matches ErrFull); rooms
	// at their limit keep taking messages, since each prunes an older one,
	// and members still come and go. The headroom is what those commits
	// need: bbolt reuses freed pages only a transaction later.
	MaxSize int
	// Logger receives commit failures and pruning notes; nil discards.
	Logger *slog.Logger

	// RecheckInterval is how often, while the last write failed (WriteErr)
	// and no other write came, the committer checks whether the disk takes
	// writes again; 0 means 2 s.
	RecheckInterval time.Duration
	// RecheckSize is the size of the scratch file that check writes and
	// fsyncs; 0 means 1 MiB.
	RecheckSize int
}

func (o Options) withDefaults() Options {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.HistoryBytes == 0 {
		o.HistoryBytes = DefaultHistoryBytes
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = DefaultCommitInterval
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.LockWait <= 0 {
		o.LockWait = DefaultLockWait
	}
	if o.MaxAge > 0 && o.PruneInterval <= 0 {
		o.PruneInterval = min(max(o.MaxAge/10, time.Second), time.Minute)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.RecheckInterval <= 0 {
		o.RecheckInterval = DefaultRecheckInterval
	}
	if o.RecheckSize <= 0 {
		o.RecheckSize = DefaultRecheckSize
	}
	return o
}

// Record is one accepted message.
type Record struct {
	Seq      uint64
	TS       int64  // unix ms, relay clock
	MemberID string // the sender
	ClientID string // the client's msg id (dedup key together with MemberID)
	Text     string
	// Name and Avatar are the sender's name and avatar when it sent the
	// message (optional), so that history can still show who wrote a message
	// after that member left and was deleted.
	Name   string
	Avatar string
}

// MemberRecord is a member of a room as it survives a restart.
type MemberRecord struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Avatar  string `json:"avatar,omitempty"`
	KeyHash string `json:"key_hash"` // hex SHA-256 of the member key (never the key)
	Since   int64  `json:"since"`    // unix ms of first join
}

// RoomState is a room as stored.
type RoomState struct {
	Name    string
	Epoch   string // random, created with the room's history; changes only if history is lost
	Seq     uint64 // latest seq (0 for an empty room)
	Members []MemberRecord
}

// Errors callers can test with errors.Is.
var (
	// ErrClosed: the store was closed; nothing more is written.
	ErrClosed = errors.New("store: closed")
	// ErrUnknownRoom: a write for a room that EnsureRoom never created.
	ErrUnknownRoom = errors.New("store: unknown room")
	// ErrSeqOutOfOrder: Append with a seq other than the room's latest + 1.
	// After any failed Append the caller must take the next seq from the
	// store again (Seq), since failed records take no seq.
	ErrSeqOutOfOrder = errors.New("store: seq out of order")
	// ErrDuplicateID: the (member, client id) pair is already stored; see
	// DuplicateError for the stored record.
	ErrDuplicateID = errors.New("store: duplicate message id")
	// ErrLocked: another process holds the database file.
	ErrLocked = errors.New("store: database in use")
	// ErrCorrupt: the file is not a Heartline database or is damaged.
	ErrCorrupt = errors.New("store: database damaged")
	// ErrFull: the commit would grow the file beyond Options.MaxSize.
	ErrFull = errors.New("store: database at its size cap")
)

// DuplicateError is returned (to done) when a record's (member, client id)
// is already stored. Existing is the record stored first, whose seq and ts
// belong in the repeated ack.
type DuplicateError struct{ Existing Record }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("store: message id %q of member %q is already stored as seq %d",
		e.Existing.ClientID, e.Existing.MemberID, e.Existing.Seq)
}

// Is makes errors.Is(err, ErrDuplicateID) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicateID }

// Store is the durable history. Safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger

	// mu guards closed; writers hold it shared while enqueueing so that Close
	// (exclusive) knows no one will send on queue after it closes it.
	mu     sync.RWMutex
	closed bool
	queue  chan *request

	committerDone chan struct{}

	commits, committed, failed, pruned atomic.Uint64

	writeErr atomic.Pointer[error] // see WriteErr
	// roomBytes is the size of each room's records (HistoryBytes), known
	// once a commit or the pruning at Open has read the room; only the
	// committer (and Open, before it starts) uses it.
	roomBytes map[string]int64
	// fullLogged is when the committer last logged a commit refused by
	// MaxSize (it logs one every fullLogEvery at most).
	fullLogged time.Time
}

const fullLogEvery = 10 * time.Second

// Stats are counters for metrics and tests.
type Stats struct {
	Commits  uint64 // write transactions that committed
	Appended uint64 // messages made durable
	Failed   uint64 // requests whose transaction failed (I/O, size cap)
	Pruned   uint64 // messages dropped by retention
	Queued   int    // writes waiting for the committer now
}

// Stats returns the counters since Open.
func (s *Store) Stats() Stats {
	return Stats{
		Commits:  s.commits.Load(),
		Appended: s.committed.Load(),
		Failed:   s.failed.Load(),
		Pruned:   s.pruned.Load(),
		Queued:   len(s.queue),
	}
}

// Open creates dir if needed and opens <dir>/heartline.db.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if dir == "" {
		return nil, errors.New("store: no data dir given: set --data-dir to a directory the relay may write")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, userError(nil, err, "cannot create the data dir %s (%v); create it yourself with write permission for the relay, or choose another --data-dir", dir, err)
	}
	path := filepath.Join(dir, FileName)
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, userError(ErrCorrupt, nil, "%s is not a regular file (%s); move it away or choose another --data-dir", path, fi.Mode().Type())
		}
		if err := checkFile(path, fi.Size(), opts); err != nil {
			return nil, err
		}
	}

	db, err := openBolt(path, opts, false)
	if err != nil {
		return nil, openError(path, opts.LockWait, err)
	}
	s := &Store{
		db:            db,
		path:          path,
		opts:          opts,
		log:           opts.Logger,
		queue:         make(chan *request, opts.QueueSize),
		committerDone: make(chan struct{}),
		roomBytes:     make(map[string]int64),
	}
	if err := s.initFormat(); err != nil {
		db.Close()
		return nil, err
	}
	s.pruneAll() // History or MaxAge may be smaller than last time
	go s.committer()
	return s, nil
}

// openBolt opens the file; bbolt panics on some damaged files (a garbage
// freelist page, say), which is turned into an error here. readOnly opens it
// without writing anything (not even a new file) and loads the freelist at
// once, under the fault guard.
func openBolt(path string, opts Options, readOnly bool) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: bbolt panicked reading it: %v", berrors.ErrInvalid, r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockWait,
		MaxSize:         opts.MaxSize,
		FreelistType:    bolt.FreelistMapType, // retention frees pages at every append
		ReadOnly:        readOnly,
		PreLoadFreelist: readOnly,
	})
}

// fixDamaged is what the operator can do about a damaged database.
const fixDamaged = "restore it from a backup, or move it aside to start with an empty history"

// checkFile verifies an existing database before the read-write open, which
// would start a fresh history in an empty file and may write to a damaged
// one: it opens the file read-only and checks its size, every page and
// every record, so that damage is a clear error at start (never a crash,
// never a silently short history) and the file is left as it was.
func checkFile(path string, size int64, opts Options) error {
	if size == 0 {
		return userError(ErrCorrupt, nil, "%s is empty (0 bytes), so its history is lost (a full disk or an interrupted copy?); the relay left it untouched: %s", path, fixDamaged)
	}
	db, err := openBolt(path, opts, true)
	if err != nil {
		return openError(path, opts.LockWait, err)
	}
	defer db.Close()
	s := &Store{db: db, path: path, opts: opts, log: opts.Logger}
	return recoverFault(path, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			// A truncated file: bbolt maps the missing pages anyway, and
			// touching one is SIGBUS.
			if tx.Size() > size {
				return userError(ErrCorrupt, nil, "%s is truncated (%d bytes, its pages need %d); the relay left it untouched: %s", path, size, tx.Size(), fixDamaged)
			}
			if tx.Bucket(bktFormat) == nil {
				empty := true
				_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
				if !empty {
					return userError(ErrCorrupt, nil, "%s is a bbolt database of another program, not a Heartline one; move it away or choose another --data-dir", path)
				}
				return nil // created but never stamped: initFormat does that
			}
			if v := tx.Bucket(bktFormat).Get(keyFormat); string(v) != string(formatVersion) {
				return userError(ErrCorrupt, nil, "%s has format %q, this relay reads format %q; run the Heartline version that wrote it, or move the file away to start with an empty history", path, v, formatVersion)
			}
			return s.verify(tx)
		})
	})
}

// openError turns a bbolt open error into one a person can act on.
func openError(path string, wait time.Duration, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return userError(ErrLocked, err, "%s is in use by another heartline-relay (still locked after %s); stop the other relay or use another --data-dir", path, wait)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return userError(ErrCorrupt, err, "%s is not a Heartline database or is damaged (%v); the relay left it untouched: %s", path, oneLine(err), fixDamaged)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EROFS):
		return userError(nil, err, "cannot open %s for writing (%v); give the relay write permission on the data dir or choose another --data-dir", path, err)
	case errors.Is(err, syscall.EISDIR):
		return userError(ErrCorrupt, err, "%s is a directory, not a database file; move it away or choose another --data-dir", path)
	}
	// bbolt reports some damage without a sentinel ("file size too small",
	// panics recovered as errors); a file that opens at all but fails here is
	// damaged rather than absent.
	return userError(ErrCorrupt, err, "cannot open %s (%v); if it is damaged, %s", path, oneLine(err), fixDamaged)
}

// oneLine keeps an error from a library on one line of the relay's output.
func oneLine(v any) string {
	return strings.Join(strings.Fields(fmt.Sprint(v)), " ")
}

// Bucket layout (all names are bytes):
//
//	heartline/format            = "1"
//	rooms/<room>/meta/epoch     = hex string
//	rooms/<room>/meta/seq       = uint64 big-endian (latest seq ever assigned)
//	rooms/<room>/meta/created   = int64 big-endian unix ms
//	rooms/<room>/msgs/<seq BE>  = encoded Record (see encodeRecord)
//	rooms/<room>/ids/<idKey>    = uint64 big-endian seq
//	rooms/<room>/members/<id>   = JSON MemberRecord
var (
	bktFormat  = []byte("heartline")
	keyFormat  = []byte("format")
	bktRooms   = []byte("rooms")
	bktMeta    = []byte("meta")
	bktMsgs    = []byte("msgs")
	bktIDs     = []byte("ids")
	bktMembers = []byte("members")
	keyEpoch   = []byte("epoch")
	keySeq     = []byte("seq")
	keyCreated = []byte("created")

	formatVersion = []byte("1")
)

// initFormat stamps a new file (checkFile has refused a file that is not
// ours, has a newer format, or is damaged).
func (s *Store) initFormat() error {
	fresh := false
	err := s.guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			fresh = tx.Bucket(bktFormat) == nil
			return nil
		})
	})
	if err != nil || !fresh {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		fb, err := tx.CreateBucket(bktFormat)
		if err != nil {
			return err
		}
		if err := fb.Put(keyFormat, formatVersion); err != nil {
			return err
		}
		_, err = tx.CreateBucket(bktRooms)
		return err
	})
	if err != nil {
		return userError(nil, err, "cannot initialise %s (%v); check that the disk has space and the relay may write there", s.path, err)
	}
	return nil
}

// verify checks the file's page structure (bbolt's own consistency check)
// and that every room's records decode and agree with its dedup index.
func (s *Store) verify(tx *bolt.Tx) error {
	damaged := func(what string, args ...any) error {
		return userError(ErrCorrupt, nil, "%s is damaged (%s); the relay left it untouched: %s", s.path, oneLine(fmt.Sprintf(what, args...)), fixDamaged)
	}
	// bbolt's Check reads pages on a goroutine of its own, where a page
	// pointing outside the file is a fatal fault: read every page here
	// first, where it is a panic the caller's guard recovers.
	touchSink.Add(int64(touchPages(tx.Cursor(), tx.Bucket)))
	var problems []string
	for err := range tx.Check() {
		if len(problems) < 3 {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return damaged("%s", strings.Join(problems, "; "))
	}
	rooms := tx.Bucket(bktRooms)
	if rooms == nil {
		return damaged("no rooms bucket")
	}
	return rooms.ForEachBucket(func(name []byte) error {
		st, err := readRoom(rooms.Bucket(name), string(name))
		if err != nil {
			return damaged("%v", err)
		}
		rb := rooms.Bucket(name)
		msgs, ids := rb.Bucket(bktMsgs), rb.Bucket(bktIDs)
		var last uint64
		withID := 0
		err = msgs.ForEach(func(k, v []byte) error {
			r, err := decodeRecord(keySeqOf(k), v)
			if err != nil {
				return err
			}
			if r.Seq <= last || r.Seq > st.Seq {
				return fmt.Errorf("message seq %d out of order (previous %d, room seq %d)", r.Seq, last, st.Seq)
			}
			last = r.Seq
			if r.ClientID != "" {
				withID++
				if got := ids.Get(idKey(nil, r.MemberID, r.ClientID)); keySeqOf(got) != r.Seq {
					return fmt.Errorf("message %d is missing from the dedup index", r.Seq)
				}
			}
			return nil
		})
		if err != nil {
			return damaged("room %q: %v", name, err)
		}
		if n := ids.Stats().KeyN; n != withID {
			return damaged("room %q: dedup index has %d entries for %d messages", name, n, withID)
		}
		return nil
	})
}

// touchSink keeps touchPages' reads from being optimised away.
var touchSink atomic.Int64

// touchPages reads the first and last byte of every key and value below c,
// which reads every page of the tree (branches, leaves, the buckets inside).
func touchPages(c *bolt.Cursor, bucket func([]byte) *bolt.Bucket) (sum int) {
	for k, v := c.First(); k != nil; k, v = c.Next() {
		for _, b := range [][]byte{k, v} {
			if len(b) > 0 {
				sum += int(b[0]) + int(b[len(b)-1])
			}
		}
		if v == nil {
			if child := bucket(k); child != nil {
				sum += touchPages(child.Cursor(), child.Bucket)
			}
		}
	}
	return sum
}

// recoverFault turns a bbolt panic or memory fault while fn reads a damaged
// file into ErrCorrupt.
func recoverFault(path string, fn func() error) (err error) {
	// A damaged page can point bbolt past the end of its memory map: without
	// this that is a fatal fault, with it a panic we recover.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = userError(ErrCorrupt, nil, "%s is damaged (bbolt failed reading it: %s); the relay left it untouched: %s", path, oneLine(r), fixDamaged)
		}
	}()
	return fn()
}

// guard turns a bbolt panic (damaged pages are its usual cause) into
// ErrCorrupt, so that one damaged page fails a request instead of the relay.
func (s *Store) guard(fn func() error) (err error) {
	// A damaged page can point bbolt past the end of its memory map: without
	// this that is a fatal fault, with it a panic we recover.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("store: bbolt panicked; the database file is probably damaged", "panic", r)
			err = userError(ErrCorrupt, nil, "%s is damaged (%v); stop the relay and move it away to start with an empty history", s.path, r)
		}
	}()
	return fn()
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close stops accepting writes, commits everything already queued (their
// callbacks fire), stops the committer and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.committerDone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", s.path, err)
	}
	return nil
}

// userError is an error whose message is written for a person (what
// happened, what to do) while errors.Is/As still see the sentinel and the
// cause behind it.
type userErr struct {
	msg  string
	errs []error
}

func (e *userErr) Error() string   { return e.msg }
func (e *userErr) Unwrap() []error { return e.errs }

func userError(sentinel, cause error, format string, args ...any) error {
	e := &userErr{msg: fmt.Sprintf(format, args...)}
	for _, err := range []error{sentinel, cause} {
		if err != nil {
			e.errs = append(e.errs, err)
		}
	}
	return e
}

func newEpoch() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: no randomness for a room epoch: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
