package history

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MentionsName reports whether text mentions name as "@name": any case,
// compared after Unicode normalisation (NFC), with word boundaries on both
// sides: "@Ana," and "(@ana)" mention Ana; "@Anabel", "ana@example.org"
// and "Ana" without the @ do not. Names may hold spaces ("@Ana Lima").
func MentionsName(text, name string) bool {
	name = norm.NFC.String(strings.TrimSpace(name))
	if name == "" || !strings.Contains(text, "@") {
		return false
	}
	text = norm.NFC.String(text)
	nameRunes := utf8.RuneCountInString(name)
	lastOfName, _ := utf8.DecodeLastRuneInString(name)
	endsInWord := wordRune(lastOfName) // "@bob!" ends itself
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], '@')
		if j < 0 {
			return false
		}
		at := i + j
		i = at + 1
		if at > 0 {
			prev, _ := utf8.DecodeLastRuneInString(text[:at])
			if wordRune(prev) {
				continue // an e-mail address, or "x@y"
			}
		}
		rest := text[at+1:]
		// Take as many runes as the name has; simple case folding keeps
		// the rune count, so EqualFold on that prefix is exact.
		end, k := 0, 0
		for k < nameRunes && end < len(rest) {
			_, size := utf8.DecodeRuneInString(rest[end:])
			end += size
			k++
		}
		if k < nameRunes || !strings.EqualFold(rest[:end], name) {
			continue
		}
		if endsInWord && end < len(rest) {
			next, _ := utf8.DecodeRuneInString(rest[end:])
			if wordRune(next) {
				continue // "@Anabel" is not "@Ana"
			}
		}
		return true
	}
	return false
}

// wordRune: a rune that continues a word (letters, digits, combining
// marks, the underscore and joiners).
func wordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || r == '_' || r == '\u200D'
}
