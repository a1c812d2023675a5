package history

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// queryPlan is SQLite's plan for q, one line per step.
func queryPlan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.read.Query(`EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// The benchmarks' budgets hold only while these plans do: a search walks
// the FTS index newest first and stops at its limit (no sort of every
// match), and a page reads the timeline index (no scan, no sort).
func TestQueriesUseTheirIndexes(t *testing.T) {
	s := openTemp(t)
	s.Put(ctx, lobby, seqRange("a", 1, 10))
	for _, scoped := range []bool{false, true} {
		args := []any{"", "", "", "", `"message"`}
		if scoped {
			args = append(args, 1)
		}
		args = append(args, 50)
		if p := queryPlan(t, s, searchSQL(scoped), args...); strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "VIRTUAL TABLE INDEX") {
			t.Fatalf("search plan (scoped %v):\n%s", scoped, p)
		}
	}
	page := `SELECT ` + msgCols + ` FROM messages WHERE room_id = ? AND (ts, seq, epoch) < (?, ?, ?) ORDER BY ts DESC, seq DESC, epoch DESC LIMIT ?`
	if p := queryPlan(t, s, page, 1, 5, 5, "a", 50); strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "messages_timeline") {
		t.Fatalf("page plan:\n%s", p)
	}
	unread := `SELECT count(*) FROM (SELECT 1 FROM messages WHERE room_id = ? AND own = 0 AND (ts, seq, epoch) > (?, ?, ?) LIMIT ?)`
	if p := queryPlan(t, s, unread, 1, 5, 5, "a", CountCap); !strings.Contains(p, "COVERING INDEX messages_timeline") {
		t.Fatalf("unread plan:\n%s", p)
	}
}

func TestHostileTextIsStoredAsIsAndFound(t *testing.T) {
	s := openTemp(t)
	long := strings.Repeat("wörd ", 20_000) + "needle"
	texts := []string{
		"bad utf8 \xff\xfe here",
		"nul \x00 inside needle",
		long,
		"",
		"'); DROP TABLE messages; -- needle",
	}
	var msgs []Message
	for i, text := range texts {
		m := msg("a", uint64(i+1), text)
		m.Name = "Robert'); DROP TABLE rooms;--"
		msgs = append(msgs, m)
	}
	if err := s.Put(ctx, lobby, msgs); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Latest(ctx, lobby, 10)
	got := p.Messages()
	if len(got) != len(texts) {
		t.Fatalf("stored %d of %d", len(got), len(texts))
	}
	for i, m := range got {
		if m.Text != texts[i] || m.Name != msgs[i].Name {
			t.Fatalf("message %d came back as %.40q", i, m.Text)
		}
	}
	hits, err := s.Search(ctx, "needle", nil, 10)
	if err != nil || len(hits) != 3 {
		t.Fatalf("%d hits, %v", len(hits), err)
	}
	for _, h := range hits {
		for _, sp := range h.TextSpans {
			if h.Msg.Text[sp.Start:sp.End] != "needle" {
				t.Fatalf("span %v of %.40q is %q", sp, h.Msg.Text, h.Msg.Text[sp.Start:sp.End])
			}
		}
	}
	if _, err := s.Search(ctx, "\xff\xfe", nil, 10); err != nil {
		t.Fatalf("a query of invalid UTF-8: %v", err)
	}
}

func TestStoreAndWriterLeaveNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := Open(t.TempDir()+"/history.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := s.NewWriter(WriterOptions{})
	w.Put(lobby, seqRange("a", 1, 100)...)
	w.Close()
	if _, err := s.Search(ctx, "message", nil, 5); err != nil {
		t.Fatal(err)
	}
	s.Close()
}
