package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// MaxRoomNameLen bounds room names in bytes (the protocol allows far less;
// this only keeps bbolt keys sane).
const MaxRoomNameLen = 256

// view runs a read transaction, reporting a closed store as ErrClosed.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	err := s.guard(func() error { return s.db.View(fn) })
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// roomBucket returns the room's bucket or nil.
func roomBucket(tx *bolt.Tx, room string) *bolt.Bucket {
	return tx.Bucket(bktRooms).Bucket([]byte(room))
}

// readRoom reads a room's epoch, seq and members.
func readRoom(rb *bolt.Bucket, name string) (RoomState, error) {
	rt, err := openRoomTx(rb, name)
	if err != nil {
		return RoomState{}, err
	}
	st := RoomState{Name: name, Epoch: string(rt.meta.Get(keyEpoch)), Seq: rt.seq}
	if st.Epoch == "" {
		return st, fmt.Errorf("room %q has no epoch: %w", name, ErrCorrupt)
	}
	err = rt.members.ForEach(func(k, v []byte) error {
		var m MemberRecord
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("room %q member %q: %v: %w", name, k, err, ErrCorrupt)
		}
		st.Members = append(st.Members, m)
		return nil
	})
	return st, err
}

// Rooms returns every stored room with its epoch, seq and members (ordered
// by room name, members by id), for start-up.
func (s *Store) Rooms() ([]RoomState, error) {
	var out []RoomState
	err := s.view(func(tx *bolt.Tx) error {
		rooms := tx.Bucket(bktRooms)
		return rooms.ForEachBucket(func(name []byte) error {
			st, err := readRoom(rooms.Bucket(name), string(name))
			out = append(out, st)
			return err
		})
	})
	return out, err
}

// Room returns one room's stored state; ok is false if it does not exist.
func (s *Store) Room(name string) (st RoomState, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		rb := roomBucket(tx, name)
		if rb == nil {
			return nil
		}
		ok = true
		st, err = readRoom(rb, name)
		return err
	})
	return st, ok, err
}

// Seq is the room's latest committed seq (0 for an empty or unknown room).
func (s *Store) Seq(room string) (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if rb := roomBucket(tx, room); rb != nil {
			if meta := rb.Bucket(bktMeta); meta != nil {
				seq = keySeqOf(meta.Get(keySeq))
			}
		}
		return nil
	})
	return seq, err
}

// EnsureRoom returns the room's state, creating the room with a new random
// epoch and seq 0 if it does not exist yet (a durable write through the
// committer, so it waits for one commit).
func (s *Store) EnsureRoom(name string) (RoomState, error) {
	if name == "" || len(name) > MaxRoomNameLen {
		return RoomState{}, fmt.Errorf("store: room name must be 1-%d bytes, got %d", MaxRoomNameLen, len(name))
	}
	if st, ok, err := s.Room(name); err != nil || ok {
		return st, err
	}
	ch := make(chan error, 1)
	s.enqueue(&request{kind: kindEnsureRoom, room: name, ensure: ch})
	if err := <-ch; err != nil {
		return RoomState{}, err
	}
	st, ok, err := s.Room(name)
	if err == nil && !ok {
		err = fmt.Errorf("store: room %q vanished after it was created", name)
	}
	return st, err
}

// After returns the retained records of room with Seq > seq, ascending, at
// most limit of them (limit <= 0: no limit).
//
// complete is true only when recs is exactly every message after seq up to
// the room's latest seq: nothing was pruned between seq and the first record,
// and limit did not cut the tail. A caller may claim recovery only then.
// A seq beyond the room's latest (a client that holds messages this history
// never had) is reported as incomplete with no records. An unknown room has
// no messages: complete only for seq 0.
func (s *Store) After(room string, seq uint64, limit int) (recs []Record, complete bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		rb := roomBucket(tx, room)
		if rb == nil {
			complete = seq == 0
			return nil
		}
		rt, err := openRoomTx(rb, room)
		if err != nil {
			return err
		}
		latest := rt.seq
		switch {
		case seq > latest:
			return nil
		case seq == latest:
			complete = true
			return nil
		}
		c := rt.msgs.Cursor()
		k, v := c.Seek(seqKey(seq + 1))
		if k == nil {
			return nil // everything after seq was pruned
		}
		first := keySeqOf(k)
		for ; k != nil && (limit <= 0 || len(recs) < limit); k, v = c.Next() {
			r, err := decodeRecord(keySeqOf(k), v)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		complete = first == seq+1 && recs[len(recs)-1].Seq == latest
		return nil
	})
	if err != nil {
		recs, complete = nil, false
	}
	return recs, complete, err
}

// Latest returns the newest n retained records of room, ascending by seq
// (n <= 0: all retained). An unknown room has none.
func (s *Store) Latest(room string, n int) ([]Record, error) {
	var recs []Record
	err := s.view(func(tx *bolt.Tx) error {
		rb := roomBucket(tx, room)
		if rb == nil {
			return nil
		}
		msgs := rb.Bucket(bktMsgs)
		if msgs == nil {
			return fmt.Errorf("room %q is missing its messages: %w", room, ErrCorrupt)
		}
		c := msgs.Cursor()
		for k, v := c.Last(); k != nil && (n <= 0 || len(recs) < n); k, v = c.Prev() {
			r, err := decodeRecord(keySeqOf(k), v)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(recs)
	return recs, nil
}

// Before returns the newest n retained records of room with seq < seq,
// ascending by seq. An unknown room has none.
func (s *Store) Before(room string, seq uint64, n int) ([]Record, error) {
	var recs []Record
	err := s.view(func(tx *bolt.Tx) error {
		rb := roomBucket(tx, room)
		if rb == nil || seq <= 1 {
			return nil
		}
		msgs := rb.Bucket(bktMsgs)
		if msgs == nil {
			return fmt.Errorf("room %q is missing its messages: %w", room, ErrCorrupt)
		}
		c := msgs.Cursor()
		k, v := c.Seek(seqKey(seq))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && len(recs) < n; k, v = c.Prev() {
			r, err := decodeRecord(keySeqOf(k), v)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(recs)
	return recs, nil
}

// LookupID finds the retained record that memberID sent with client id
// clientID (spec rule 3: a resent id gets the same ack). It sees committed
// records only; ids still in the commit queue are the caller's to track.
func (s *Store) LookupID(room, memberID, clientID string) (rec Record, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		rb := roomBucket(tx, room)
		if rb == nil {
			return nil
		}
		ids, msgs := rb.Bucket(bktIDs), rb.Bucket(bktMsgs)
		if ids == nil || msgs == nil {
			return fmt.Errorf("room %q is missing its index: %w", room, ErrCorrupt)
		}
		k := ids.Get(idKey(nil, memberID, clientID))
		if k == nil {
			return nil
		}
		v := msgs.Get(k)
		if v == nil {
			return nil // pruned in the same way; treat as unknown
		}
		rec, err = decodeRecord(binary.BigEndian.Uint64(k), v)
		ok = err == nil
		return err
	})
	return rec, ok, err
}
