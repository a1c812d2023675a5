package history

import (
	"context"
	"database/sql"
	"errors"
)

// RoomInfo is what the sidebar needs of a room after a restart.
type RoomInfo struct {
	Key  RoomKey
	Last *Message // the newest message held (nil: none)
	// Unread counts messages from others after the read marker (all of
	// them before the first MarkRead); Mentions those of them that mention
	// the person. Both stop at CountCap ("999+" in a sidebar).
	Unread   int
	Mentions int
	Read     Cursor // the read marker (zero: never marked)
}

// CountCap is where RoomInfo's counts stop counting, so that a room with
// years of unread history costs the sidebar no more than a busy one.
const CountCap = 1000

// Rooms lists every room the device holds anything of, in no particular
// order (the sidebar keeps its own).
func (s *Store) Rooms(ctx context.Context) ([]RoomInfo, error) {
	type row struct {
		id   int64
		info RoomInfo
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, relay, room, read_ts, read_seq, read_epoch FROM rooms ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var list []row
	for rows.Next() {
		var r row
		var seq int64
		if err := rows.Scan(&r.id, &r.info.Key.Relay, &r.info.Key.Room, &r.info.Read.TS, &seq, &r.info.Read.Epoch); err != nil {
			rows.Close()
			return nil, err
		}
		r.info.Read.Seq = uint64(seq)
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]RoomInfo, 0, len(list))
	for _, r := range list {
		last, err := s.older(ctx, r.id, nil, 1)
		if err != nil {
			return nil, err
		}
		if len(last) == 1 {
			r.info.Last = &last[0]
		}
		rc := r.info.Read
		if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages WHERE room_id = ? AND own = 0
			AND (ts, seq, epoch) > (?, ?, ?) LIMIT ?)`, r.id, rc.TS, int64(rc.Seq), rc.Epoch, CountCap).Scan(&r.info.Unread); err != nil {
			return nil, err
		}
		if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages WHERE room_id = ? AND mentions = 1
			AND (ts, seq, epoch) > (?, ?, ?) LIMIT ?)`, r.id, rc.TS, int64(rc.Seq), rc.Epoch, CountCap).Scan(&r.info.Mentions); err != nil {
			return nil, err
		}
		out = append(out, r.info)
	}
	return out, nil
}

// SeqRange is an inclusive range of seqs in one epoch.
type SeqRange struct {
	Epoch    string
	From, To uint64
}

// Holes lists the seqs of epoch that the device lacks between 1 and the
// newest it holds, newest first: what to ask the relay's history for when
// the person scrolls past what the device has (the relay only holds its
// current epoch).
func (s *Store) Holes(ctx context.Context, key RoomKey, epoch string) ([]SeqRange, error) {
	room, ok, err := s.lookupRoom(ctx, key)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT prev, seq FROM (
			SELECT seq, coalesce(lag(seq) OVER (ORDER BY seq), 0) AS prev
			FROM messages WHERE room_id = ? AND epoch = ?
		) WHERE seq > prev + 1 ORDER BY seq DESC`, room, epoch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SeqRange
	for rows.Next() {
		var prev, seq int64
		if err := rows.Scan(&prev, &seq); err != nil {
			return nil, err
		}
		out = append(out, SeqRange{Epoch: epoch, From: uint64(prev) + 1, To: uint64(seq) - 1})
	}
	return out, rows.Err()
}

// ResumePoint is where a resume should start from what the device holds:
// the epoch of the newest message and the highest seq up to which the
// device holds every message of it, a recorded gap counting as accepted
// (as shared/client's own resume point does). ok is false when the device
// holds nothing of the room. Computed from the database, it never claims a
// message that a crash or power cut lost.
func (s *Store) ResumePoint(ctx context.Context, key RoomKey) (epoch string, lastSeq uint64, ok bool, err error) {
	room, found, err := s.lookupRoom(ctx, key)
	if err != nil || !found {
		return "", 0, false, err
	}
	err = s.read.QueryRowContext(ctx, `SELECT epoch FROM messages WHERE room_id = ?
		ORDER BY ts DESC, seq DESC, epoch DESC LIMIT 1`, room).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	// Runs of consecutive seqs: seq - row_number is constant along a run.
	rows, err := s.read.QueryContext(ctx, `SELECT min(seq), max(seq) FROM (
			SELECT seq, seq - row_number() OVER (ORDER BY seq) AS run
			FROM messages WHERE room_id = ? AND epoch = ?
		) GROUP BY run ORDER BY 1`, room, epoch)
	if err != nil {
		return "", 0, false, err
	}
	type run struct{ from, to uint64 }
	var runs []run
	for rows.Next() {
		var a, b int64
		if err := rows.Scan(&a, &b); err != nil {
			rows.Close()
			return "", 0, false, err
		}
		runs = append(runs, run{uint64(a), uint64(b)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", 0, false, err
	}
	marks, err := s.markers(ctx, room)
	if err != nil {
		return "", 0, false, err
	}
	// The first run is where the device began holding the epoch (a join
	// gets the latest page): accepted. A later run counts only if a
	// recorded gap accepted the hole before it.
	lastSeq = runs[0].to
	for _, r := range runs[1:] {
		accepted := false
		for _, m := range marks {
			if m.before.Epoch == epoch && m.before.Seq > lastSeq && m.before.Seq <= r.from {
				accepted = true
				break
			}
		}
		if !accepted {
			break
		}
		lastSeq = r.to
	}
	return epoch, lastSeq, true, nil
}
