package chatview

import (
	"net/url"
	"regexp"
	"strings"
)

// Segment is a run of message text; URL is set when the run is a link.
type Segment struct {
	Text string
	URL  *url.URL
}

var linkRE = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s<>"]+`)

// SplitLinks cuts text into plain runs and links (http, https, and www. ones).
// Punctuation that ends a sentence is not part of a link, nor is a closing
// bracket without an opening one inside the link.
func SplitLinks(text string) []Segment {
	locs := linkRE.FindAllStringIndex(text, -1)
	if len(locs) == 0 {
		return []Segment{{Text: text}}
	}
	var out []Segment
	last := 0
	for _, loc := range locs {
		start, end := loc[0], trimLinkEnd(text, loc[0], loc[1])
		raw := text[start:end]
		target := raw
		if strings.HasPrefix(strings.ToLower(raw), "www.") {
			target = "https://" + raw
		}
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			continue
		}
		if start > last {
			out = append(out, Segment{Text: text[last:start]})
		}
		out = append(out, Segment{Text: raw, URL: u})
		last = end
	}
	if last < len(text) {
		out = append(out, Segment{Text: text[last:]})
	}
	return out
}

// HasLinks reports whether text contains a link.
func HasLinks(text string) bool { return linkRE.MatchString(text) }

func trimLinkEnd(text string, start, end int) int {
	for end > start {
		c := text[end-1]
		switch c {
		case '.', ',', ';', ':', '!', '?', '\'', '*':
			end--
			continue
		case ')', ']', '}':
			open := map[byte]byte{')': '(', ']': '[', '}': '{'}[c]
			if strings.Count(text[start:end], string(open)) < strings.Count(text[start:end], string(c)) {
				end--
				continue
			}
		}
		break
	}
	return end
}
