package chatview

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mentions reports whether text mentions name: "@" then the name (any
// case), at the start or after a space or punctuation, and not followed by
// a letter or digit (so "@Al" does not mention "Alice", nor "@Alice" "Al").
func Mentions(text, name string) bool {
	if name == "" {
		return false
	}
	lt, ln := strings.ToLower(text), "@"+strings.ToLower(name)
	for i := 0; ; {
		j := strings.Index(lt[i:], ln)
		if j < 0 {
			return false
		}
		at := i + j
		end := at + len(ln)
		if boundaryBefore(lt, at) && boundaryAfter(lt, end) {
			return true
		}
		i = at + 1
	}
}

func boundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

func boundaryAfter(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

// MentionQuery is the "@..." being typed at the cursor: where the "@" is
// (byte offset) and what follows it up to the cursor.
type MentionQuery struct {
	At     int
	Prefix string
}

// MentionAt finds the mention being typed before cursor (a byte offset in
// text): an "@" at the start or after white space, with at most one more
// space-separated word after it (names have spaces: "@Alice Ch"). ok is
// false when the cursor is not in one.
func MentionAt(text string, cursor int) (q MentionQuery, ok bool) {
	if cursor > len(text) || cursor < 0 {
		return q, false
	}
	before := text[:cursor]
	at := strings.LastIndexByte(before, '@')
	if at < 0 || !(at == 0 || unicode.IsSpace(rune(before[at-1]))) {
		return q, false
	}
	prefix := before[at+1:]
	if strings.ContainsAny(prefix, "\n\r\t@") || strings.Count(prefix, " ") > 2 {
		return q, false
	}
	return MentionQuery{At: at, Prefix: prefix}, true
}

// CompleteMention lists the names that start with prefix (any case), those
// whose first letters match first, then by name; me is left out, and at
// most max are returned.
func CompleteMention(prefix string, names []string, me string, max int) []string {
	lp := strings.ToLower(prefix)
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		ln := strings.ToLower(n)
		if n == me || seen[ln] || !strings.HasPrefix(ln, lp) {
			continue
		}
		seen[ln] = true
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// InsertMention replaces the query in text with "@name " and returns the
// new text and the cursor after it.
func InsertMention(text string, cursor int, q MentionQuery, name string) (string, int) {
	ins := "@" + name + " "
	rest := text[cursor:]
	rest = strings.TrimPrefix(rest, " ")
	return text[:q.At] + ins + rest, q.At + len(ins)
}
