package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/heartline/heartline/shared/protocol"
)

// Gap records that a room's history may miss messages between two points:
// after After (the last message held before it) and before Before (the
// first message after it). Record one when a resume comes back
// recovered:false (shared/client's HistoryGap): After is the previous
// epoch and HistoryGap.HeldUpTo, Before the new welcome's epoch and the
// first seq of its history (welcome seq + 1 when the history is empty).
type Gap struct {
	After  Ref
	Before Ref
}

// GapFromWelcome is the Gap to record for shared/client's HistoryGap:
// prevEpoch is the room's epoch before this link's welcome (the resume's),
// heldUpTo the event's HeldUpTo, w the welcome that came with it (the
// Welcomed event just before). The gap ends at the first message of the
// welcome's history, or after its seq when the history is empty.
func GapFromWelcome(prevEpoch string, heldUpTo uint64, w protocol.Welcome) Gap {
	before := w.Seq + 1
	for _, m := range w.History {
		before = min(before, m.Seq)
	}
	return Gap{After: Ref{Epoch: prevEpoch, Seq: heldUpTo}, Before: Ref{Epoch: w.Epoch, Seq: before}}
}

// Put stores msgs for the room in one transaction. A message already held
// (same epoch and seq) is left as it is, so replays never duplicate.
func (s *Store) Put(ctx context.Context, key RoomKey, msgs []Message) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		in, err := prepareInsert(ctx, tx)
		if err != nil {
			return err
		}
		defer in.Close()
		return s.putTx(ctx, tx, in, key, msgs)
	})
}

// inserter holds a write transaction's prepared statements for Put.
type inserter struct {
	insert, held *sql.Stmt
}

func prepareInsert(ctx context.Context, tx *sql.Tx) (*inserter, error) {
	// No conflict target: a clash of the time-derived id (below) is
	// skipped too, then told apart from a duplicate and retried.
	insert, err := tx.PrepareContext(ctx, `INSERT INTO messages
		(id, room_id, epoch, seq, ts, msg_id, member_id, name, avatar, text, own, mentions)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`)
	if err != nil {
		return nil, err
	}
	held, err := tx.PrepareContext(ctx, `SELECT 1 FROM messages WHERE room_id = ? AND epoch = ? AND seq = ?`)
	if err != nil {
		insert.Close()
		return nil, err
	}
	return &inserter{insert: insert, held: held}, nil
}

func (in *inserter) Close() {
	in.insert.Close()
	in.held.Close()
}

// Message ids (the FTS5 rowids) follow the relay's time: the time in
// milliseconds above 8 bits of hash of (room, epoch, seq). FTS5 walks a
// match's rowids in order, so "newest first" is its own order and a search
// stops after its limit instead of sorting every match of a common word.
// Few low bits keep the rowid deltas in the index's doclists short (8 bits:
// 3-byte varints for messages a few seconds apart); a clash between two
// messages of the same millisecond takes the next slot.
const idTimeShift = 8

// maxIDTime keeps ts << idTimeShift inside int64.
const maxIDTime = 1<<(63-idTimeShift) - 1

func messageID(room int64, m *Message, attempt int) int64 {
	ts := min(max(m.TS, 0), maxIDTime)
	h := uint64(room)*0x9E3779B97F4A7C15 ^ m.Seq*0xBF58476D1CE4E5B9
	for _, c := range []byte(m.Epoch) {
		h = (h ^ uint64(c)) * 0x100000001B3
	}
	low := (h + uint64(attempt)) & (1<<idTimeShift - 1)
	return ts<<idTimeShift | int64(low)
}

// putTx inserts msgs with in (prepareInsert on tx).
func (s *Store) putTx(ctx context.Context, tx *sql.Tx, in *inserter, key RoomKey, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	room, err := s.roomID(ctx, tx, key)
	if err != nil {
		return err
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Seq == 0 || m.Seq > maxSeq {
			return fmt.Errorf("history: message %q has seq %d: the relay numbers messages from 1", m.ID, m.Seq)
		}
		for attempt := 0; ; attempt++ {
			res, err := in.insert.ExecContext(ctx, messageID(room, m, attempt), room, m.Epoch, int64(m.Seq), m.TS, m.ID, m.MemberID, m.Name, m.Avatar, m.Text, m.Own, m.Mentions)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				break
			}
			var one int
			err = in.held.QueryRowContext(ctx, room, m.Epoch, int64(m.Seq)).Scan(&one)
			if err == nil {
				break // held already: a replay
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if attempt >= 1<<idTimeShift {
				return fmt.Errorf("history: no free id for message %q at %d", m.ID, m.TS)
			}
		}
	}
	return nil
}

// maxSeq: SQLite integers are signed 64-bit.
const maxSeq = 1<<63 - 1

// MarkGap records a gap in the room's history (see Gap). Reads show it
// between the messages around it until the device holds every message in
// between.
func (s *Store) MarkGap(ctx context.Context, key RoomKey, g Gap) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error { return s.markGapTx(ctx, tx, key, g) })
}

func (s *Store) markGapTx(ctx context.Context, tx *sql.Tx, key RoomKey, g Gap) error {
	if g.After.Seq > maxSeq || g.Before.Seq > maxSeq {
		return fmt.Errorf("history: gap seq out of range")
	}
	id, err := s.roomID(ctx, tx, key)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO gaps (room_id, after_epoch, after_seq, before_epoch, before_seq, marked_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		id, g.After.Epoch, int64(g.After.Seq), g.Before.Epoch, int64(g.Before.Seq), s.now().UnixMilli())
	return err
}

// MarkRead records that the person has read the room up to c (a message's
// Cursor) included. The marker only moves forward.
func (s *Store) MarkRead(ctx context.Context, key RoomKey, c Cursor) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error { return s.markReadTx(ctx, tx, key, c) })
}

func (s *Store) markReadTx(ctx context.Context, tx *sql.Tx, key RoomKey, c Cursor) error {
	if c.Seq > maxSeq {
		return fmt.Errorf("history: read marker seq out of range")
	}
	id, err := s.roomID(ctx, tx, key)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE rooms SET (read_ts, read_seq, read_epoch) = (?, ?, ?)
		WHERE id = ? AND (read_ts, read_seq, read_epoch) < (?, ?, ?)`,
		c.TS, int64(c.Seq), c.Epoch, id, c.TS, int64(c.Seq), c.Epoch)
	return err
}

// Prune deletes every message the relay stamped before olderThan, in all
// rooms (the retention setting: 30 days, a year), and gives the space back.
// It reports how many messages it deleted.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	var n int64
	cutoff := olderThan.UnixMilli()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE ts < ? LIMIT 1`, cutoff).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // nothing to do: no rebuild
		}
		if err != nil {
			return err
		}
		return bulkDelete(ctx, tx, func() error {
			res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE ts < ?`, cutoff)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			_, err = tx.ExecContext(ctx, `DELETE FROM gaps WHERE marked_at < ?`, cutoff)
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("history: pruning messages older than %s: %w", olderThan.Format(time.DateOnly), err)
	}
	if n > 0 {
		if err := s.compact(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// bulkDelete runs del, which deletes messages, without the FTS delete
// trigger (one index update per deleted message costs far more than
// rebuilding the index), then rebuilds the index from the messages that
// remain. A merge of the index would not do: it can leave a deleted
// message's words in a segment that it does not rewrite. All inside the
// caller's transaction: a crash leaves the old state or the new one.
func bulkDelete(ctx context.Context, tx *sql.Tx, del func() error) error {
	if _, err := tx.ExecContext(ctx, `DROP TRIGGER messages_fts_delete`); err != nil {
		return err
	}
	if err := del(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')`); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, createDeleteTrigger)
	return err
}

// ClearRoom deletes everything the device holds of the room: messages,
// gaps and read marker, and gives the space back, leaving none of the
// deleted text in the database file or its WAL.
func (s *Store) ClearRoom(ctx context.Context, key RoomKey) error {
	key = key.norm()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM rooms WHERE relay = ? AND room = ?`, key.Relay, key.Room).Scan(&id)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		delete(s.roomIDs, key)
		return bulkDelete(ctx, tx, func() error {
			for _, q := range []string{`DELETE FROM messages WHERE room_id = ?`, `DELETE FROM gaps WHERE room_id = ?`, `DELETE FROM rooms WHERE id = ?`} {
				if _, err := tx.ExecContext(ctx, q, id); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("history: clearing %s on %s: %w", key.Room, key.Relay, err)
	}
	return s.compact(ctx)
}

// compact gives the space of deleted messages back to the file system
// (the freed pages were zeroed by secure_delete) and empties the WAL, so
// that deleted text is gone from the disk, not only from sight.
func (s *Store) compact(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	for _, q := range []string{`PRAGMA incremental_vacuum`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
		if _, err := s.write.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("history: compacting after a delete: %w", err)
		}
	}
	return nil
}
