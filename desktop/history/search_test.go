package history

import (
	"strings"
	"testing"
)

// marked renders a hit's text with [brackets] around its spans.
func marked(text string, spans []Span) string {
	var b strings.Builder
	at := 0
	for _, sp := range spans {
		b.WriteString(text[at:sp.Start])
		b.WriteString("[" + text[sp.Start:sp.End] + "]")
		at = sp.End
	}
	b.WriteString(text[at:])
	return b.String()
}

func TestSearchFindsWordsAcrossRoomsNewestFirst(t *testing.T) {
	s := openTemp(t)
	garden := RoomKey{Relay: "ws://10.0.0.2:8080", Room: "garden"}
	a := []Message{
		msg("a", 1, "The Café opens at nine"),
		msg("a", 2, "nothing to see"),
		msg("a", 3, "café au lait, then the café again"),
	}
	g := msg("g", 1, "meet at the cafe tomorrow")
	g.TS += 10_000
	g.Name = "Bruno"
	s.Put(ctx, lobby, a)
	s.Put(ctx, garden, []Message{g})

	hits, err := s.Search(ctx, "cafe ", nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hits {
		got = append(got, h.Room.Room+": "+marked(h.Msg.Text, h.TextSpans))
	}
	want := []string{
		"garden: meet at the [cafe] tomorrow",
		"lobby: [café] au lait, then the [café] again",
		"lobby: The [Café] opens at nine",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if hits[0].Msg.Name != "Bruno" || hits[0].Msg.Ref() != (Ref{"g", 1}) {
		t.Fatalf("hit carries %+v", hits[0].Msg)
	}

	// Scoped to one room.
	hits, _ = s.Search(ctx, "cafe", &lobby, 10)
	if len(hits) != 2 || hits[0].Room.Room != "lobby" {
		t.Fatalf("scoped: %+v", hits)
	}
	// Limit.
	if hits, _ = s.Search(ctx, "cafe", nil, 1); len(hits) != 1 {
		t.Fatalf("limit 1: %d hits", len(hits))
	}
	// The sender's name counts, and is highlighted.
	hits, _ = s.Search(ctx, "bruno tomorrow", nil, 10)
	if len(hits) != 1 || marked(hits[0].Msg.Name, hits[0].NameSpans) != "[Bruno]" ||
		marked(hits[0].Msg.Text, hits[0].TextSpans) != "meet at the cafe [tomorrow]" {
		t.Fatalf("name search: %+v", hits)
	}
}

func TestSearchMatchesThePrefixOfTheWordBeingTyped(t *testing.T) {
	s := openTemp(t)
	s.Put(ctx, lobby, []Message{msg("a", 1, "the deployment finished"), msg("a", 2, "deploy it")})
	for _, c := range []struct {
		q    string
		want int
	}{
		{"deplo", 2},       // still typing
		{"deploy", 2},      // deploy and deployment
		{"deploy ", 1},     // the word is finished
		{"the deplo", 1},   // every word, the last as a prefix
		{"deploy   it", 1}, // extra spaces
		{"de", 0},          // two characters: a whole word, not a prefix
	} {
		hits, err := s.Search(ctx, c.q, nil, 10)
		if err != nil || len(hits) != c.want {
			t.Errorf("%q: %d hits (%v), want %d", c.q, len(hits), err, c.want)
		}
	}
}

func TestSearchTakesAnyInputAsPlainWords(t *testing.T) {
	s := openTemp(t)
	s.Put(ctx, lobby, []Message{
		msg("a", 1, `he said "foo AND bar" OR NOT`),
		msg("a", 2, "NEAR(x y) col:thing *star*"),
		msg("a", 3, "emoji 🎉 party"),
	})
	for _, c := range []struct {
		q    string
		want int
	}{
		{`"foo`, 1}, {`AND OR`, 1}, {`OR`, 1}, {`NOT `, 1}, {`foo"bar`, 0},
		{`NEAR(x`, 1}, {`col:thing`, 1}, {`*star*`, 1}, {`^foo`, 1},
		{`-`, 0}, {`"`, 0}, {`***`, 0}, {``, 0}, {`   `, 0}, {`(`, 0}, {`🎉`, 0},
		{`party`, 1}, {"\x00foo", 1}, {"'; DROP TABLE messages; --", 0},
	} {
		hits, err := s.Search(ctx, c.q, nil, 10)
		if err != nil {
			t.Errorf("%q: %v", c.q, err)
			continue
		}
		if len(hits) != c.want {
			t.Errorf("%q: %d hits, want %d", c.q, len(hits), c.want)
		}
	}
	if p, _ := s.Latest(ctx, lobby, 10); len(p.Messages()) != 3 {
		t.Fatalf("the store lost messages: %q", render(p))
	}
}

func TestSearchNeverInjectsMarkup(t *testing.T) {
	s := openTemp(t)
	hostile := "look \uFDD0here\uFDD1 <b>bold</b> here"
	s.Put(ctx, lobby, []Message{msg("a", 1, hostile), msg("a", 2, "<i>here</i> and there")})
	hits, err := s.Search(ctx, "here", nil, 10)
	if err != nil || len(hits) != 2 {
		t.Fatalf("%v %+v", err, hits)
	}
	for _, h := range hits {
		for _, sp := range h.TextSpans {
			if sp.Start < 0 || sp.End > len(h.Msg.Text) || sp.Start >= sp.End {
				t.Fatalf("span %+v outside %q", sp, h.Msg.Text)
			}
		}
		switch h.Msg.Seq {
		case 1:
			if h.Msg.Text != hostile || h.TextSpans != nil {
				t.Fatalf("a text holding the marks: %q %+v", h.Msg.Text, h.TextSpans)
			}
		case 2:
			if got := marked(h.Msg.Text, h.TextSpans); got != "<i>[here]</i> and there" {
				t.Fatalf("got %q", got)
			}
		}
	}
}

func TestMatchExpressionQuotesEveryWord(t *testing.T) {
	for in, want := range map[string]string{
		`foo`:         `"foo"*`,
		`foo `:        `"foo"`,
		`say "hi`:     `"say" """hi"*`,
		`AND OR`:      `"AND" "OR"`,
		`AND NOT`:     `"AND" "NOT"*`,
		`- -- foo`:    `"foo"*`,
		`...`:         ``,
		"caf\u00e9\t": `"café"`,
		`x`:           `"x"`,
		`ab`:          `"ab"`,
		`abc`:         `"abc"*`,
		"\x00é\x01":   `"é"`,
	} {
		if got := MatchExpression(in); got != want {
			t.Errorf("MatchExpression(%q) = %q, want %q", in, got, want)
		}
	}
}
