package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// OutboxStatus is where a typed message stands.
type OutboxStatus int

const (
	// Pending: typed, not yet accepted by the relay (maybe not even sent).
	Pending OutboxStatus = iota
	// Sent: the relay accepted it (ack) and gave it a seq.
	Sent
	// Failed: the relay refused it for good (too long, rate limited too many
	// times); Reason says why. Retry puts it back in the queue.
	Failed
	// Discarded: the person threw a failed message away (Client.Discard);
	// it is gone from the outbox.
	Discarded
)

func (s OutboxStatus) String() string {
	switch s {
	case Pending:
		return "pending"
	case Sent:
		return "sent"
	case Failed:
		return "failed"
	case Discarded:
		return "discarded"
	}
	return fmt.Sprintf("OutboxStatus(%d)", int(s))
}

// MarshalText writes the status as a word, so that outbox files read well.
func (s OutboxStatus) MarshalText() ([]byte, error) {
	switch s {
	case Pending, Sent, Failed, Discarded:
		return []byte(s.String()), nil
	}
	return nil, fmt.Errorf("unknown outbox status %d", int(s))
}

// UnmarshalText reads a word written by MarshalText.
func (s *OutboxStatus) UnmarshalText(b []byte) error {
	switch string(b) {
	case "pending":
		*s = Pending
	case "sent":
		*s = Sent
	case "failed":
		*s = Failed
	case "discarded":
		*s = Discarded
	default:
		return fmt.Errorf("unknown outbox status %q", b)
	}
	return nil
}

// OutboxItem is one message the person typed.
type OutboxItem struct {
	ID      string       `json:"id"` // the protocol msg id, random and unique
	Text    string       `json:"text"`
	Status  OutboxStatus `json:"status"`
	Reason  string       `json:"reason,omitempty"` // why it failed, in words
	Seq     uint64       `json:"seq,omitempty"`    // room seq, once sent
	TS      int64        `json:"ts,omitempty"`     // relay time (unix ms), once sent
	Created time.Time    `json:"created"`          // when the person typed it (local clock)
}

// OutboxStore keeps the messages that are not yet sent (pending or failed)
// across app restarts. The engine calls it from its own goroutines, one
// call at a time; an implementation need not be fast but must be durable
// when Put returns.
type OutboxStore interface {
	// Load returns every stored item in the order they were first Put.
	Load() ([]OutboxItem, error)
	// Put stores item, replacing the one with the same ID in place, or
	// appending it.
	Put(item OutboxItem) error
	// Delete removes the item with that ID; a missing ID is not an error.
	Delete(id string) error
}

// OutboxBatchDeleter is an optional OutboxStore method: removing many
// items in one write. The engine removes acked messages in the background
// and uses it when a burst of acks arrives.
type OutboxBatchDeleter interface {
	DeleteMany(ids []string) error
}

// serialStore makes the engine keep OutboxStore's promise of one call at a
// time: New loads through it and the store writer's goroutine writes
// through it, and a Client that is never Run may still write after a
// Discard.
type serialStore struct {
	mu sync.Mutex
	s  OutboxStore
}

func (st *serialStore) Load() ([]OutboxItem, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s.Load()
}

func (st *serialStore) Put(item OutboxItem) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s.Put(item)
}

func (st *serialStore) Delete(id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s.Delete(id)
}

// DeleteMany uses the store's OutboxBatchDeleter if it has one, else
// deletes the ids one by one.
func (st *serialStore) DeleteMany(ids []string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if batch, ok := st.s.(OutboxBatchDeleter); ok {
		return batch.DeleteMany(ids)
	}
	var err error
	for _, id := range ids {
		err = errors.Join(err, st.s.Delete(id))
	}
	return err
}

// moveToEnd replaces the item with item's ID by item, placed last. The
// built-in stores do it in one write; any other store gets a Delete and a
// Put, and a crash between the two loses the item.
func (st *serialStore) moveToEnd(item OutboxItem) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if m, ok := st.s.(interface{ moveToEnd(OutboxItem) error }); ok {
		return m.moveToEnd(item)
	}
	if err := st.s.Delete(item.ID); err != nil {
		return err
	}
	return st.s.Put(item)
}

// MemoryOutbox is an OutboxStore that forgets everything when the process
// ends; the zero Config uses one.
type MemoryOutbox struct {
	mu    sync.Mutex
	items []OutboxItem
}

// NewMemoryOutbox returns an empty in-memory store.
func NewMemoryOutbox() *MemoryOutbox { return &MemoryOutbox{} }

// Load implements OutboxStore.
func (m *MemoryOutbox) Load() ([]OutboxItem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.items), nil
}

// Put implements OutboxStore.
func (m *MemoryOutbox) Put(item OutboxItem) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items = putItem(m.items, item)
	return nil
}

// Delete implements OutboxStore.
func (m *MemoryOutbox) Delete(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items = deleteItem(m.items, id)
	return nil
}

// DeleteMany implements OutboxBatchDeleter.
func (m *MemoryOutbox) DeleteMany(ids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items = deleteItems(m.items, ids)
	return nil
}

func (m *MemoryOutbox) moveToEnd(item OutboxItem) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items = append(deleteItem(m.items, item.ID), item)
	return nil
}

func putItem(items []OutboxItem, item OutboxItem) []OutboxItem {
	for i := range items {
		if items[i].ID == item.ID {
			items[i] = item
			return items
		}
	}
	return append(items, item)
}

func deleteItem(items []OutboxItem, id string) []OutboxItem {
	return slices.DeleteFunc(items, func(it OutboxItem) bool { return it.ID == id })
}

func deleteItems(items []OutboxItem, ids []string) []OutboxItem {
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	return slices.DeleteFunc(items, func(it OutboxItem) bool { return gone[it.ID] })
}

// FileOutbox is an OutboxStore kept in one JSON file. Every change rewrites
// the file through a temporary file in the same directory, fsync and
// rename, so a crash or power cut leaves either the old or the new file,
// never half of one.
type FileOutbox struct {
	path  string
	mu    sync.Mutex
	items []OutboxItem
}

// outboxFile is the on-disk format.
type outboxFile struct {
	Version int          `json:"version"`
	Items   []OutboxItem `json:"items"`
}

const outboxFileVersion = 1

// ErrOutboxDamaged is wrapped by the error NewFileOutbox returns when the
// file exists but cannot be read as an outbox.
var ErrOutboxDamaged = errors.New("outbox file is damaged")

// NewFileOutbox opens (or, on first use, will create) the outbox file at
// path. The directory is created if needed. A file that is not a readable
// outbox is left untouched and reported with an error wrapping
// ErrOutboxDamaged that says what to do; the app may then move it away and
// call NewFileOutbox again.
func NewFileOutbox(path string) (*FileOutbox, error) {
	if path == "" {
		return nil, errors.New("outbox: no file path given")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: cannot create the folder for %s: %w", path, err)
	}
	f := &FileOutbox{path: path}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("outbox: cannot read %s: %w", path, err)
	}
	var file outboxFile
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("%w: %s cannot be read (%v); move it away to start with an empty outbox (messages typed but not sent are in it)", ErrOutboxDamaged, path, err)
	}
	if file.Version != outboxFileVersion {
		return nil, fmt.Errorf("%w: %s has format version %d, this Heartline reads version %d; update Heartline or move the file away", ErrOutboxDamaged, path, file.Version, outboxFileVersion)
	}
	seen := make(map[string]bool, len(file.Items))
	for _, it := range file.Items {
		if it.ID == "" || seen[it.ID] {
			return nil, fmt.Errorf("%w: %s holds an item with a missing or repeated id %q; move it away to start with an empty outbox", ErrOutboxDamaged, path, it.ID)
		}
		seen[it.ID] = true
	}
	f.items = file.Items
	return f, nil
}

// Path is the file the outbox lives in.
func (f *FileOutbox) Path() string { return f.path }

// Load implements OutboxStore.
func (f *FileOutbox) Load() ([]OutboxItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.items), nil
}

// Put implements OutboxStore.
func (f *FileOutbox) Put(item OutboxItem) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replaceLocked(putItem(slices.Clone(f.items), item))
}

// Delete implements OutboxStore.
func (f *FileOutbox) Delete(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := deleteItem(slices.Clone(f.items), id)
	if len(next) == len(f.items) {
		return nil
	}
	return f.replaceLocked(next)
}

// DeleteMany implements OutboxBatchDeleter with one write.
func (f *FileOutbox) DeleteMany(ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := deleteItems(slices.Clone(f.items), ids)
	if len(next) == len(f.items) {
		return nil
	}
	return f.replaceLocked(next)
}

// moveToEnd replaces the item with item's ID by item, placed last, in one
// atomic rewrite.
func (f *FileOutbox) moveToEnd(item OutboxItem) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replaceLocked(append(deleteItem(slices.Clone(f.items), item.ID), item))
}

// replaceLocked makes next the outbox's items once they are on disk; on an
// error the items stay what they were. f.mu is held.
func (f *FileOutbox) replaceLocked(next []OutboxItem) error {
	if err := f.write(next); err != nil {
		return err
	}
	f.items = next
	return nil
}

func (f *FileOutbox) write(items []OutboxItem) error {
	if items == nil {
		items = []OutboxItem{}
	}
	data, err := json.MarshalIndent(outboxFile{Version: outboxFileVersion, Items: items}, "", "  ")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("outbox: cannot write in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("outbox: cannot write %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("outbox: cannot flush %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("outbox: cannot write %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, f.path); err != nil {
		return fmt.Errorf("outbox: cannot replace %s: %w", f.path, err)
	}
	ok = true
	// The rename is durable only once the directory entry is; failing to
	// sync a directory (some file systems refuse) is not worth an error.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
