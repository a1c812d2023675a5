package client

// seqTracker knows which room seqs the client holds and computes the
// gap-free last_seq the protocol's resume asks for: the highest seq up to
// which every message is held. A seq above a gap (an ack that overtook a
// broadcast, say) is remembered but does not count until the gap is filled.
type seqTracker struct {
	last  uint64              // every seq in 1..last is held
	above map[uint64]struct{} // held seqs > last+1
}

// add records seq and reports whether it is new (not held before).
func (t *seqTracker) add(seq uint64) bool {
	if seq == 0 || seq <= t.last {
		return false
	}
	if seq != t.last+1 {
		if _, ok := t.above[seq]; ok {
			return false
		}
		if t.above == nil {
			t.above = make(map[uint64]struct{})
		}
		t.above[seq] = struct{}{}
		return true
	}
	t.last = seq
	for {
		if _, ok := t.above[t.last+1]; !ok {
			break
		}
		delete(t.above, t.last+1)
		t.last++
	}
	return true
}

// has reports whether seq is held.
func (t *seqTracker) has(seq uint64) bool {
	if seq <= t.last {
		return true
	}
	_, ok := t.above[seq]
	return ok
}

// acceptGapUpTo declares that the client will never get the messages up to
// seq that it lacks (the relay sent only its latest page): last_seq moves to
// seq so that the next resume does not ask for them again.
func (t *seqTracker) acceptGapUpTo(seq uint64) {
	if seq <= t.last {
		return
	}
	t.last = seq
	for s := range t.above {
		if s <= seq {
			delete(t.above, s)
		}
	}
	for {
		if _, ok := t.above[t.last+1]; !ok {
			break
		}
		delete(t.above, t.last+1)
		t.last++
	}
}

// reset forgets everything (a new epoch: the seqs start again at 1).
func (t *seqTracker) reset(last uint64) {
	t.last = last
	t.above = nil
}
