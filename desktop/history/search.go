package history

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Span is a highlighted match: byte offsets into the text, Start
// included, End excluded.
type Span struct{ Start, End int }

// Hit is one search result.
type Hit struct {
	Room      RoomKey
	Msg       Message
	TextSpans []Span // the matches in Msg.Text
	NameSpans []Span // the matches in Msg.Name
}

// Marks that highlight() puts around matches, later turned into spans:
// Unicode noncharacters, reserved for a program's internal use. A message
// that itself holds one gets no spans rather than wrong ones.
const (
	markOpen  = "\uFDD0"
	markClose = "\uFDD1"
)

// Search finds messages whose text or sender name holds every word of
// query, newest first, in one room (scope) or all (scope nil). The query is
// plain words, never FTS5 syntax: quotes, AND, OR, NEAR and * are searched
// for as text. The last word matches as a prefix while the person is
// still typing it (no space after it yet, 3 characters or more). Case and diacritics are
// ignored ("cafe" finds "Café"). Words are split as FTS5's unicode61
// tokenizer does: at spaces and punctuation, so a run of Chinese or
// Japanese without spaces is one word, found whole or by its first 3 or
// more characters, not by a part in its middle (a trigram index would
// be needed for that).
func (s *Store) Search(ctx context.Context, query string, scope *RoomKey, limit int) ([]Hit, error) {
	match := MatchExpression(query)
	if match == "" || limit <= 0 {
		return nil, nil
	}
	args := []any{markOpen, markClose, markOpen, markClose, match}
	if scope != nil {
		room, ok, err := s.lookupRoom(ctx, *scope)
		if err != nil || !ok {
			return nil, err
		}
		args = append(args, room)
	}
	args = append(args, limit)
	q := searchSQL(scope != nil)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hits []Hit
	for rows.Next() {
		var h Hit
		var seq int64
		var text, name string
		m := &h.Msg
		if err := rows.Scan(&h.Room.Relay, &h.Room.Room, &m.Epoch, &seq, &m.TS, &m.ID, &m.MemberID, &m.Name, &m.Avatar, &m.Text, &m.Own, &m.Mentions, &text, &name); err != nil {
			return nil, err
		}
		m.Seq = uint64(seq)
		h.TextSpans = spans(m.Text, text)
		h.NameSpans = spans(m.Name, name)
		hits = append(hits, h)
	}
	return hits, rows.Err()
}

// searchSQL is the search query. It orders by the FTS rowid, the
// message id, which follows the relay's time: FTS5 walks the matches in
// that order and the LIMIT stops it (TestQueriesUseTheirIndexes).
func searchSQL(scoped bool) string {
	q := `SELECT r.relay, r.room, ` + prefixed("m.", msgCols) + `,
			highlight(messages_fts, 0, ?, ?), highlight(messages_fts, 1, ?, ?)
		FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid JOIN rooms r ON r.id = m.room_id
		WHERE messages_fts MATCH ?`
	if scoped {
		q += ` AND m.room_id = ?`
	}
	return q + ` ORDER BY messages_fts.rowid DESC LIMIT ?`
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// minPrefix is the shortest last word matched as a prefix.
const minPrefix = 3

// MatchExpression turns what a person typed into an FTS5 query: each word
// a quoted string (so no input is FTS5 syntax), all of them required, the
// last a prefix unless the input ends with a space or the word is shorter
// than 3 characters. Words with no letter
// or digit are dropped (FTS5 would find nothing for them); "" means there
// is nothing to search for.
func MatchExpression(input string) string {
	// Control characters separate words too: FTS5 reads its query as a C
	// string, so a NUL would end it.
	sep := func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
	words := strings.FieldsFunc(input, sep)
	var b strings.Builder
	kept := 0
	lastWord := ""
	for _, w := range words {
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) {
			continue
		}
		if kept > 0 {
			b.WriteByte(' ')
		}
		kept++
		lastWord = w
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(w, `"`, `""`))
		b.WriteByte('"')
	}
	if kept == 0 {
		return ""
	}
	// A prefix query merges the entries of every word it matches: from 3
	// characters that stays fast (docs/BENCHMARKS.md); shorter, the word
	// is matched whole ("ok", "hi"). A prefix index would make 1 and 2
	// characters fast at a third more disk and half the write speed.
	last := []rune(input)
	if !sep(last[len(last)-1]) && utf8.RuneCountInString(lastWord) >= minPrefix {
		b.WriteByte('*')
	}
	return b.String()
}

// spans reads the matches out of highlighted, which is original with
// markOpen/markClose around each match.
func spans(original, highlighted string) []Span {
	if strings.Contains(original, markOpen) || strings.Contains(original, markClose) {
		return nil
	}
	var out []Span
	var plain strings.Builder
	open := -1
	for i := 0; i < len(highlighted); {
		switch {
		case strings.HasPrefix(highlighted[i:], markOpen):
			open = plain.Len()
			i += len(markOpen)
		case strings.HasPrefix(highlighted[i:], markClose):
			if open >= 0 && plain.Len() > open {
				out = append(out, Span{Start: open, End: plain.Len()})
			}
			open = -1
			i += len(markClose)
		default:
			plain.WriteByte(highlighted[i])
			i++
		}
	}
	if plain.String() != original {
		return nil // not the text we stored: show it without highlight
	}
	return out
}
