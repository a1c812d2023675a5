// Package names decides which display names a room admits and when two names
// are too alike to share a room. It applies the PRECIS nickname profile
// (RFC 8266) and the Unicode confusable skeleton (UTS #39) on top of the
// wire-level checks of protocol.NormalizeName. It lives outside
// shared/protocol because that package imports only the standard library.
package names

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"

	"github.com/heartline/heartline/shared/protocol"
)

const (
	zwnj = '\u200C'
	zwj  = '\u200D'
	vs15 = '\uFE0E' // text presentation selector
	vs16 = '\uFE0F' // emoji presentation selector
)

// Normalize checks a display name and returns the form the relay stores and
// shows. On top of protocol.NormalizeName (trimmed, 1-32 code points, no
// control or bidi characters) it:
//   - refuses invisible characters (Default_Ignorable_Code_Point, format
//     characters, Hangul fillers, tag characters, lone variation selectors,
//     the blank Braille pattern), except ZWJ between two emoji and a
//     variation selector after an emoji or symbol, which keep emoji sequences
//     such as 👨‍👩‍👧 and ❤️ working;
//   - applies the PRECIS nickname profile (RFC 8266): non-ASCII spaces become
//     one ASCII space, NFKC (fullwidth Ａ becomes A, Å decomposed becomes Å),
//     and it refuses what the profile disallows (unassigned code points,
//     private use, ZWJ/ZWNJ outside the scripts that need them, ...);
//   - refuses a name that starts with a combining mark (a mark alone).
//
// Errors are *protocol.FrameError with code bad_name and close 4504.
func Normalize(s string) (string, error) {
	name, err := protocol.NormalizeName(s)
	if err != nil {
		return "", err
	}
	rs := []rune(name)
	if !strings.ContainsFunc(name, func(r rune) bool { return !invisible(r) && !unicode.IsSpace(r) }) {
		return "", refuse(fmt.Sprintf("the name has no visible characters (it holds only invisible ones such as %U): choose a name people can read", rs[0]))
	}
	emojiJoiners := false
	for i, r := range rs {
		if !invisible(r) {
			continue
		}
		if emojiJoiner(rs, i) {
			emojiJoiners = true
			continue
		}
		if r == zwj || r == zwnj {
			continue // PRECIS's context rules decide: some scripts need them
		}
		return "", refuse(fmt.Sprintf("the name contains the invisible character %U; remove it (names may not hide characters)", r))
	}

	var out string
	if !emojiJoiners {
		out, err = precis.Nickname.String(name)
		if err != nil {
			return "", precisRefusal(name)
		}
	} else {
		// PRECIS disallows the joiners of emoji sequences, so enforce the
		// profile on the name without them and apply its mappings (which do
		// not touch joiners) to the name with them.
		out = nicknameMap(name)
		bare := stripJoiners(out)
		enforced, err := precis.Nickname.String(bare)
		if err != nil {
			return "", precisRefusal(bare)
		}
		if enforced != bare {
			return "", refuse("the name mixes emoji sequences with characters that change under normalisation; type it plainly")
		}
	}

	n := protocol.TextLen(out)
	switch {
	case n == 0:
		return "", refuse("the name is empty after normalisation: choose a name of 1 to 32 characters")
	case n > protocol.NameMaxLen:
		return "", refuse(fmt.Sprintf("the name has %d characters once normalised; at most %d are allowed", n, protocol.NameMaxLen))
	}
	if first := []rune(out)[0]; unicode.Is(unicode.M, first) {
		return "", refuse(fmt.Sprintf("the name starts with the combining mark %U, which has no letter to sit on: start with a letter, digit or symbol", first))
	}
	return out, nil
}

// Key is the key under which a name is unique in a room, case-insensitively
// and by look: skeleton(casefold(PRECIS(name))) with every invisible
// character removed first. "Alice", "alice", "Аlice" (Cyrillic А),
// "Ａlice", "Alice"+ZWSP and "A\u0301lice"/"Álice" pairs collide. It is
// total: a stored name that today's rules would refuse still gets a key.
func Key(name string) string {
	s := foldKey(prepared(name))
	// A skeleton can yield a capital (the one of Cyrillic А is Latin A), so
	// fold and map once more to reach a fixed point.
	return foldKey(s)
}

// ShapeKey is the case-preserving UTS #39 skeleton. Casefolding first would
// hide that a capital I looks like a small l ("Ian" and "lan"), so two
// names clash in a room when either key is shared.
func ShapeKey(name string) string {
	return confusables.Skeleton(prepared(name))
}

func foldKey(s string) string {
	return confusables.Skeleton(norm.NFKC.String(cases.Fold().String(s)))
}

// prepared is the name as PRECIS enforces it (falling back to its mappings
// when the profile refuses the name), without invisible characters.
func prepared(name string) string {
	stripped := strings.Map(func(r rune) rune {
		if invisible(r) || unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	if out, err := precis.Nickname.String(stripped); err == nil {
		return out
	}
	return nicknameMap(stripped)
}

// nicknameMap applies the mappings of the PRECIS nickname profile
// (RFC 8266 §2.2): non-ASCII spaces to SPACE, trimmed, runs collapsed to one,
// NFKC, repeated until stable.
func nicknameMap(s string) string {
	for range 4 {
		next := norm.NFKC.String(strings.Join(strings.FieldsFunc(s, func(r rune) bool {
			return r == ' ' || unicode.Is(unicode.Zs, r)
		}), " "))
		if next == s {
			break
		}
		s = next
	}
	return s
}

// invisible reports characters that draw nothing (or nothing on their own).
func invisible(r rune) bool {
	switch {
	case r == '\u3164', r == '\u115F', r == '\u1160', r == '\uFFA0': // Hangul fillers
		return true
	case r == '\u2800': // Braille pattern blank: a symbol that draws nothing
		return true
	case r >= 0xE0000 && r <= 0xE0FFF: // tags, variation selectors supplement
		return true
	}
	return unicode.In(r, unicode.Other_Default_Ignorable_Code_Point, unicode.Cf, unicode.Variation_Selector)
}

// pictograph approximates Extended_Pictographic, which the standard library
// lacks: other symbols (emoji, dingbats) and the skin tone modifiers.
func pictograph(r rune) bool {
	return unicode.Is(unicode.So, r) || r >= 0x1F3FB && r <= 0x1F3FF
}

// emojiJoiner reports whether rs[i] is part of an emoji sequence: a ZWJ
// between two pictographs (a presentation selector may sit before it), or a
// variation selector after a symbol, punctuation (‼️) or keycap base (#️⃣).
func emojiJoiner(rs []rune, i int) bool {
	switch rs[i] {
	case zwj:
		if i == 0 || i+1 >= len(rs) || !pictograph(rs[i+1]) {
			return false
		}
		prev := rs[i-1]
		if prev == vs16 && i >= 2 {
			prev = rs[i-2]
		}
		return pictograph(prev)
	case vs15, vs16:
		if i == 0 {
			return false
		}
		p := rs[i-1]
		return unicode.In(p, unicode.So, unicode.Sm, unicode.P) || p >= '0' && p <= '9' || p == '#' || p == '*'
	}
	return false
}

func stripJoiners(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if !emojiJoiner(rs, i) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// precisRefusal says why the nickname profile refused s.
func precisRefusal(s string) error {
	allowed := precis.Nickname.Allowed()
	for _, r := range s {
		if r != zwj && r != zwnj && !allowed.Contains(r) {
			return refuse(fmt.Sprintf("the name contains %U, which names may not contain (unassigned, private use or otherwise disallowed by RFC 8266): remove it", r))
		}
	}
	return refuse("the name has a zero-width joiner or non-joiner (U+200D/U+200C) where its script does not use one: remove it")
}

func refuse(msg string) error {
	return &protocol.FrameError{Code: protocol.ErrBadName, Message: msg, Close: protocol.CloseHelloRefused}
}
