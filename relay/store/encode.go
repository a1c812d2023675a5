package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Messages are stored in a small binary form rather than JSON: it is about a
// third of the size for short chat lines and encodes/decodes without
// reflection (see BenchmarkEncodeRecord). Layout of a value in msgs:
//
//	byte    recordVersion (1)
//	varint  TS
//	uvarint len, MemberID
//	uvarint len, ClientID
//	uvarint len, Name
//	uvarint len, Avatar
//	rest    Text
//
// The seq is the key, so it is not repeated in the value.
const recordVersion = 1

var errBadRecord = errors.New("store: undecodable message record")

func encodeRecord(dst []byte, r *Record) []byte {
	dst = append(dst, recordVersion)
	dst = binary.AppendVarint(dst, r.TS)
	for _, s := range [...]string{r.MemberID, r.ClientID, r.Name, r.Avatar} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return append(dst, r.Text...)
}

func decodeRecord(seq uint64, b []byte) (Record, error) {
	r := Record{Seq: seq}
	if len(b) == 0 || b[0] != recordVersion {
		return r, fmt.Errorf("%w: seq %d has version %v", errBadRecord, seq, b[:min(len(b), 1)])
	}
	b = b[1:]
	ts, n := binary.Varint(b)
	if n <= 0 {
		return r, fmt.Errorf("%w: seq %d has a bad timestamp", errBadRecord, seq)
	}
	r.TS, b = ts, b[n:]
	for _, f := range [...]*string{&r.MemberID, &r.ClientID, &r.Name, &r.Avatar} {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return r, fmt.Errorf("%w: seq %d is truncated", errBadRecord, seq)
		}
		*f = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	r.Text = string(b)
	return r, nil
}

// recordIDs returns the member and client id of an encoded record without
// decoding the rest (pruning needs only these to drop the dedup entry).
func recordIDs(b []byte) (member, client []byte, ok bool) {
	if len(b) == 0 || b[0] != recordVersion {
		return nil, nil, false
	}
	b = b[1:]
	if _, n := binary.Varint(b); n <= 0 {
		return nil, nil, false
	} else {
		b = b[n:]
	}
	var out [2][]byte
	for i := range out {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, nil, false
		}
		out[i] = b[n : n+int(l)]
		b = b[n+int(l):]
	}
	return out[0], out[1], true
}

// idKey is the dedup index key. The member id is length-prefixed so that no
// (member, client id) pair can collide with another, whatever bytes they hold.
func idKey(dst []byte, member, client string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(member)))
	dst = append(dst, member...)
	return append(dst, client...)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

func keySeqOf(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// recordTS returns the TS of an encoded record (age pruning needs only it).
func recordTS(b []byte) (int64, bool) {
	if len(b) < 2 || b[0] != recordVersion {
		return 0, false
	}
	ts, n := binary.Varint(b[1:])
	return ts, n > 0
}
