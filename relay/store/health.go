package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defaults of the write check (Options.RecheckInterval, Options.RecheckSize).
const (
	DefaultRecheckInterval = 2 * time.Second
	DefaultRecheckSize     = 1 << 20
)

// WriteErr is the error of the last write transaction (a commit or a
// prune), or nil if it committed: a store that cannot write (a full disk,
// an I/O error, the size cap) reports it until a write succeeds again. The
// relay's /readyz is 503 meanwhile. So that an idle store does not report a
// problem that has gone away, the committer checks every
// Options.RecheckInterval while it lasts whether the disk takes writes
// again (see recheck).
func (s *Store) WriteErr() error {
	if p := s.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// noteWrite records the outcome of a write transaction for WriteErr.
func (s *Store) noteWrite(err error) {
	if err != nil {
		s.writeErr.Store(&err)
		return
	}
	if s.writeErr.Swap(nil) != nil {
		s.log.Info("store: writes succeed again")
	}
}

// recheck runs on the committer while WriteErr is set and nothing else was
// written for Options.RecheckInterval. A bbolt transaction with nothing to
// change still writes and fsyncs its meta page, but it may fit in pages
// the file already holds, so the disk is tried first with a scratch file of
// Options.RecheckSize bytes next to the database: a disk with less free
// space than that would most likely fail the next batch again.
func (s *Store) recheck() {
	scratch := filepath.Join(filepath.Dir(s.path), FileName+".write-check")
	err := writeScratch(scratch, s.opts.RecheckSize)
	os.Remove(scratch)
	if err == nil {
		err = s.guard(func() error { return s.db.Update(func(*bolt.Tx) error { return nil }) })
	}
	if err != nil {
		s.log.Debug("store: still cannot write", "err", err)
		return // WriteErr keeps the error of the last real write
	}
	s.noteWrite(nil)
}

func writeScratch(path string, size int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(make([]byte, size)); err != nil {
		f.Close()
		return fmt.Errorf("write check: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write check: %w", err)
	}
	return f.Close()
}
