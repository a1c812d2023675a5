package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/heartline/heartline/shared/protocol"
)

var (
	// ErrNotFound: the message asked for is not on the device (never
	// stored, pruned or cleared).
	ErrNotFound = errors.New("history: message not on this device")
	// ErrNewerSchema: the database was written by a newer Heartline.
	ErrNewerSchema = errors.New("history: database made by a newer version of Heartline")
	// ErrClosed: the Store or Writer is closed.
	ErrClosed = errors.New("history: closed")
)

// RoomKey names a room on a relay. Relay is compared without case or
// surrounding space, as shared/client.RoomKey does; what the Store returns
// (RoomInfo.Key, Hit.Room) is in that form: compare keys with Same.
type RoomKey struct {
	Relay string
	Room  string
}

// Normalized is the key as the Store keeps it: the relay address trimmed
// and lower-cased.
func (k RoomKey) Normalized() RoomKey {
	return RoomKey{Relay: strings.ToLower(strings.TrimSpace(k.Relay)), Room: k.Room}
}

// Same reports whether two keys name the same room.
func (k RoomKey) Same(o RoomKey) bool { return k.Normalized() == o.Normalized() }

func (k RoomKey) norm() RoomKey { return k.Normalized() }

// Ref identifies a message in its room.
type Ref struct {
	Epoch string
	Seq   uint64
}

// Cursor is a place in a room's timeline (relay time, then seq, then
// epoch); Message.Cursor gives a message's. Paging from a cursor works even
// when its message has since been pruned.
type Cursor struct {
	TS    int64
	Seq   uint64
	Epoch string
}

func (c Cursor) less(d Cursor) bool {
	if c.TS != d.TS {
		return c.TS < d.TS
	}
	if c.Seq != d.Seq {
		return c.Seq < d.Seq
	}
	return c.Epoch < d.Epoch
}

// Message is one room message as the device keeps it.
type Message struct {
	Epoch    string // the room's history epoch when the relay sent it
	Seq      uint64
	ID       string // the sender's client id for the message
	MemberID string
	Name     string
	Avatar   string
	Text     string
	TS       int64 // the relay's time, unix milliseconds
	Own      bool  // sent by this device's person
	Mentions bool  // mentions this device's person (see MentionsName)
}

// Ref is the message's identity in its room.
func (m Message) Ref() Ref { return Ref{Epoch: m.Epoch, Seq: m.Seq} }

// Cursor is the message's place in the timeline.
func (m Message) Cursor() Cursor { return Cursor{TS: m.TS, Seq: m.Seq, Epoch: m.Epoch} }

// Time is the relay's time for the message.
func (m Message) Time() time.Time { return time.UnixMilli(m.TS) }

// FromProtocol turns a received message (shared/client's MessageReceived)
// into a Message. epoch is the room's epoch from the link's welcome; myName
// is the local person's name, for Mentions (own messages never mention).
func FromProtocol(epoch string, m protocol.Message, own bool, myName string) Message {
	return Message{
		Epoch:    epoch,
		Seq:      m.Seq,
		ID:       m.ID,
		MemberID: m.From.ID,
		Name:     m.From.Name,
		Avatar:   m.From.Avatar,
		Text:     m.Text,
		TS:       m.TS,
		Own:      own,
		Mentions: !own && MentionsName(m.Text, myName),
	}
}

// Options tune Open; the zero value is fine.
type Options struct {
	// Log receives warnings (nil: discarded).
	Log *slog.Logger
	// Now is the clock for gap markers' timestamps (nil: time.Now).
	Now func() time.Time
}

// Store is the device's message history. Its methods are safe for
// concurrent use; writes are serialised, reads run beside them (WAL).
type Store struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	write *sql.DB // one connection: writes never wait on each other's locks
	read  *sql.DB

	writeMu sync.Mutex        // held across each write transaction
	roomIDs map[RoomKey]int64 // under writeMu
}

// Open opens (creating if needed) the history database at path, upgrading
// its schema. The directory is created with mode 0700, the file 0600.
func Open(path string, opts Options) (*Store, error) {
	return openAt(path, opts, schemaVersion)
}

func openAt(path string, opts Options, version int) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("history: cannot create the folder for the message history: %w", err)
	}
	// Create the file ourselves so that it is private from the start.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("history: cannot open the message history %s: %w", abs, err)
	} else {
		f.Close()
	}
	s := &Store{path: abs, log: opts.Log, now: opts.Now, roomIDs: make(map[RoomKey]int64)}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	// journal_size_limit: after a checkpoint the WAL shrinks back to 4 MiB
	// (a Prune's index rebuild can grow it to the size of the index).
	common := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=journal_size_limit(4194304)"
	// auto_vacuum only takes effect on a new file: Prune and ClearRoom give
	// the space back with incremental_vacuum. secure_delete overwrites what
	// they delete, so cleared messages do not linger in free pages.
	s.write, err = sql.Open("sqlite", dsn(abs, "_auto_vacuum=INCREMENTAL&_txlock=immediate&_pragma=secure_delete(1)&"+common))
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetConnMaxIdleTime(0)
	s.read, err = sql.Open("sqlite", dsn(abs, common+"&_pragma=query_only(1)"))
	if err != nil {
		s.write.Close()
		return nil, fmt.Errorf("history: %w", err)
	}
	s.read.SetMaxOpenConns(4)
	s.read.SetMaxIdleConns(4)
	ctx := context.Background()
	if err := s.write.PingContext(ctx); err != nil {
		s.Close()
		return nil, s.openError(err)
	}
	if err := migrate(ctx, s.write, version); err != nil {
		s.Close()
		if errors.Is(err, ErrNewerSchema) {
			return nil, err
		}
		return nil, s.openError(err)
	}
	return s, nil
}

func (s *Store) openError(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "not a database") || strings.Contains(msg, "malformed") {
		return fmt.Errorf("history: %s is not a readable message history (%v); move it away and restart to begin an empty one", s.path, err)
	}
	return fmt.Errorf("history: cannot open the message history %s: %w", s.path, err)
}

// dsn builds a file: URI (so that any character in the path survives) with
// the driver's parameters.
func dsn(path, params string) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive letter
	}
	return (&url.URL{Scheme: "file", Path: p}).String() + "?" + params
}

// Path is the database file (beside it: the -wal and -shm files).
func (s *Store) Path() string { return s.path }

// Size is the space the history takes on disk: the database, its WAL and
// shared-memory index (for the settings' "where the data lives").
func (s *Store) Size() (int64, error) {
	var total int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(s.path + suffix)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return 0, err
		}
		total += fi.Size()
	}
	return total, nil
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.write != nil {
		errs = append(errs, s.write.Close())
	}
	return errors.Join(errs...)
}

// explainWrite adds what to do to a failed write's error: the disk is
// full, or the file is read-only or damaged.
func explainWrite(err error) error {
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff { // the primary result code
	case 13: // SQLITE_FULL
		return fmt.Errorf("%w: the disk holding the message history is full; free some space (the relay still has these messages for a while)", err)
	case 8: // SQLITE_READONLY
		return fmt.Errorf("%w: the message history cannot be written (read-only file or folder); check its permissions", err)
	case 11, 26: // SQLITE_CORRUPT, SQLITE_NOTADB
		return fmt.Errorf("%w: the message history file is damaged; close Heartline and move it away to start an empty one", err)
	}
	return err
}

// writeTx runs fn in one write transaction, serialised with every other.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return explainWrite(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		// A failed transaction may have created rooms that rolled back.
		clear(s.roomIDs)
		return explainWrite(err)
	}
	if err := tx.Commit(); err != nil {
		clear(s.roomIDs)
		return explainWrite(err)
	}
	return nil
}

// roomID returns the room's row id, creating the row; under writeMu.
func (s *Store) roomID(ctx context.Context, tx *sql.Tx, key RoomKey) (int64, error) {
	key = key.norm()
	if id, ok := s.roomIDs[key]; ok {
		return id, nil
	}
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO rooms (relay, room) VALUES (?, ?)
		ON CONFLICT (relay, room) DO UPDATE SET relay = excluded.relay RETURNING id`, key.Relay, key.Room).Scan(&id)
	if err != nil {
		return 0, err
	}
	s.roomIDs[key] = id
	return id, nil
}

// lookupRoom finds a room's id for reading; ok is false when the device
// has nothing of the room.
func (s *Store) lookupRoom(ctx context.Context, key RoomKey) (id int64, ok bool, err error) {
	key = key.norm()
	err = s.read.QueryRowContext(ctx, `SELECT id FROM rooms WHERE relay = ? AND room = ?`, key.Relay, key.Room).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}
