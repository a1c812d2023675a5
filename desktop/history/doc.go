// Package history keeps every message the desktop app sees, on the device:
// one SQLite database in the app's data directory, with an FTS5 index for
// search, read markers for unread and mention counts, and gap markers so
// that a hole in a room's history is shown, never silently merged.
//
// # Driver
//
// The driver is modernc.org/sqlite: SQLite translated to pure Go, with FTS5
// compiled in. The desktop app already needs cgo for Fyne, but a pure-Go
// SQLite adds no C compile to a cold build or to each cross-compile (Windows
// with mingw, linux/arm64), and needs no build tags for FTS5, which
// github.com/mattn/go-sqlite3 does (-tags sqlite_fts5). ncruces/go-sqlite3
// runs SQLite as WebAssembly under wazero, which compiles the module when
// the process starts: time taken from the 1 s budget for the window to come
// up. modernc is slower than C SQLite per statement, which the benchmarks
// (docs/BENCHMARKS.md, "Desktop local history") show is well inside the
// budgets here.
//
// # Durability: what "shown" means
//
// The database runs in WAL mode with synchronous=NORMAL. A transaction is on
// disk, as far as the process is concerned, once its commit returns: the WAL
// frames are written to the operating system before COMMIT returns, so
// killing the process (kill -9, a crash) cannot lose it. What NORMAL gives up
// against FULL is an fsync per commit, so a power cut may roll back the last
// transactions; those messages are still on the relay, and ResumePoint, which
// is computed from what the database holds, asks the relay for them again.
//
// Writer is how the app stores what it receives without waiting on the disk:
// a message handed to Writer.Put is in memory until the writer's next
// transaction commits, usually within a few milliseconds, and then reported
// through WriterOptions.OnStored. A message is "shown" once it is reported
// there; an app that must never show a message the device could lose renders
// from OnStored, and one that renders at once accepts that a crash inside
// that window loses the message from the device until the next resume
// fetches it again. The crash test (kill -9 while writing) checks that no
// reported message is ever missing after a reopen and that the database
// passes integrity_check.
//
// # Order, gaps and holes
//
// A room's messages are identified by (epoch, seq): the relay's history
// epoch and its seq in that epoch. Put is idempotent on that key, so resumes
// and replays never duplicate. Pages are ordered by the relay's time, then
// seq (epochs change, and seqs start again in a new epoch). Reads return
// Items: messages interleaved with Gaps, found two ways: a seq missing
// between two stored messages of the same epoch, and a change of epoch that
// MarkGap recorded (a resume that came back recovered:false) or whose first
// stored message is not seq 1. Holes lists the seq ranges the device lacks,
// to ask the relay's history for them.
//
// # Search
//
// Search runs FTS5 (unicode61 tokenizer, diacritics removed) over the text
// and the sender's name. What a person types is never FTS5 syntax: every
// word is quoted, all are required, and the last is a prefix (from 3
// characters) while it is being typed. Matches come back as byte spans
// into the text, never as markup. Message ids follow the relay's time, so
// FTS5's own rowid order is newest first and a search of a common word
// stops at its limit instead of sorting every match.
//
// # Privacy
//
// Prune (the retention setting) and ClearRoom delete messages and then
// rebuild the search index from what remains, return the freed pages
// (zeroed: secure_delete) to the file system and empty the WAL, so that the
// deleted text is gone from the disk, not only from sight. The rebuild
// costs time in proportion to the whole history (seconds for 200,000
// messages): run them off the UI goroutine.
package history
