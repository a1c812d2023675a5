package main

import "math/bits"

// seqSet records which room seqs a member received, from base on (seqs at or
// below the member's welcome seq are history, not expected live). It tells
// holes (missing below the highest seq seen), duplicates and the contiguous
// high-water mark a resume needs.
type seqSet struct {
	base    uint64 // first expected seq
	words   []uint64
	highest uint64 // highest seq seen, 0 if none
	contig  uint64 // every seq in [base, contig] was seen; base-1 if none
	count   uint64 // distinct seqs seen at or above base
	dups    uint64
	late    uint64 // a msg that arrived after a higher seq (out of order)
	lateAck uint64 // an own ack that arrived after a higher seq's msg
}

func newSeqSet(base uint64) *seqSet {
	return &seqSet{base: base, contig: base - 1, highest: base - 1}
}

// add records a delivered msg's seq; seqs below base are ignored (history
// already held).
func (s *seqSet) add(seq uint64) { s.record(seq, &s.late) }

// addAck records the seq of the member's own acked message. An ack that
// comes after a later seq's msg is counted apart from out-of-order
// deliveries: with several relays, another relay's message can reach the
// sender while its own publish is still being answered.
func (s *seqSet) addAck(seq uint64) { s.record(seq, &s.lateAck) }

func (s *seqSet) record(seq uint64, late *uint64) {
	if seq < s.base {
		return
	}
	off := seq - s.base
	w := int(off / 64)
	for w >= len(s.words) {
		s.words = append(s.words, 0)
	}
	bit := uint64(1) << (off % 64)
	if s.words[w]&bit != 0 {
		s.dups++
		return
	}
	s.words[w] |= bit
	s.count++
	if seq < s.highest {
		*late++
	}
	s.highest = max(s.highest, seq)
	for s.has(s.contig + 1) {
		s.contig++
	}
}

func (s *seqSet) has(seq uint64) bool {
	if seq < s.base {
		return true
	}
	off := seq - s.base
	w := int(off / 64)
	return w < len(s.words) && s.words[w]&(uint64(1)<<(off%64)) != 0
}

// missing counts the seqs in [base, upTo] not seen, split into holes (below
// the highest seen) and backlog (above it).
func (s *seqSet) missing(upTo uint64) (holes, backlog uint64) {
	if upTo < s.base {
		return 0, 0
	}
	hi := min(s.highest, upTo)
	if hi+1 >= s.base {
		seen := s.countRange(s.base, hi)
		holes = hi - s.base + 1 - seen
	}
	if upTo > hi {
		backlog = upTo - max(hi, s.base-1)
	}
	return holes, backlog
}

// countRange counts seen seqs in [lo, hi] (both at or above base).
func (s *seqSet) countRange(lo, hi uint64) uint64 {
	var n uint64
	for w, word := range s.words {
		if word == 0 {
			continue
		}
		first := s.base + uint64(w)*64
		if first > hi {
			break
		}
		if first >= lo && first+63 <= hi {
			n += uint64(bits.OnesCount64(word))
			continue
		}
		for b := range uint64(64) {
			seq := first + b
			if seq >= lo && seq <= hi && word&(1<<b) != 0 {
				n++
			}
		}
	}
	return n
}
