package history

import (
	"context"
	"database/sql"
	"fmt"
)

// migration moves the schema from version i to i+1 (migrations[i]). It
// runs inside the transaction that also sets user_version, so a crash
// leaves the database at the old version or the new one, never between.
type migration func(ctx context.Context, tx *sql.Tx) error

// migrations, oldest first. Never edit one that has shipped: append.
var migrations = []migration{
	migrateV1,
	migrateV2,
}

// schemaVersion is the version this build writes.
var schemaVersion = len(migrations)

// migrateV1: messages with an external-content FTS5 index kept in step by
// triggers, rooms, and gap markers.
func migrateV1(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx,
		`CREATE TABLE rooms (
			id    INTEGER PRIMARY KEY,
			relay TEXT NOT NULL,
			room  TEXT NOT NULL,
			UNIQUE (relay, room)
		)`,
		`CREATE TABLE messages (
			id        INTEGER PRIMARY KEY,
			room_id   INTEGER NOT NULL REFERENCES rooms (id),
			epoch     TEXT    NOT NULL,
			seq       INTEGER NOT NULL,
			ts        INTEGER NOT NULL,
			msg_id    TEXT    NOT NULL,
			member_id TEXT    NOT NULL,
			name      TEXT    NOT NULL,
			avatar    TEXT    NOT NULL,
			text      TEXT    NOT NULL,
			own       INTEGER NOT NULL,
			UNIQUE (room_id, epoch, seq)
		)`,
		// The timeline order: relay time, then seq, then epoch (unique with
		// room_id, so every message has one place); own makes it cover the
		// unread count.
		`CREATE INDEX messages_timeline ON messages (room_id, ts, seq, epoch, own)`,
		`CREATE TABLE gaps (
			id           INTEGER PRIMARY KEY,
			room_id      INTEGER NOT NULL REFERENCES rooms (id),
			after_epoch  TEXT    NOT NULL,
			after_seq    INTEGER NOT NULL,
			before_epoch TEXT    NOT NULL,
			before_seq   INTEGER NOT NULL,
			marked_at    INTEGER NOT NULL,
			UNIQUE (room_id, after_epoch, after_seq, before_epoch, before_seq)
		)`,
		`CREATE VIRTUAL TABLE messages_fts USING fts5 (
			text, name,
			content = 'messages', content_rowid = 'id',
			tokenize = 'unicode61 remove_diacritics 2'
		)`,
		`CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
			INSERT INTO messages_fts (rowid, text, name) VALUES (new.id, new.text, new.name);
		END`,
		createDeleteTrigger,
		`CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, name ON messages BEGIN
			INSERT INTO messages_fts (messages_fts, rowid, text, name) VALUES ('delete', old.id, old.text, old.name);
			INSERT INTO messages_fts (rowid, text, name) VALUES (new.id, new.text, new.name);
		END`,
	)
}

// createDeleteTrigger keeps the FTS index in step with deletes. Bulk
// deletes (Prune, ClearRoom) drop it inside their transaction and rebuild
// the index instead; they create it again from this text, which must stay
// what the latest schema has.
const createDeleteTrigger = `CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
			INSERT INTO messages_fts (messages_fts, rowid, text, name) VALUES ('delete', old.id, old.text, old.name);
		END`

// migrateV2: read markers and mentions, for the sidebar's unread and
// mention counts. Messages stored before v2 count as read (a room does not
// light up with its whole history after an upgrade) and as not mentioning
// anyone (the store never knew the person's name).
func migrateV2(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx,
		`ALTER TABLE messages ADD COLUMN mentions INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE rooms ADD COLUMN read_ts INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE rooms ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE rooms ADD COLUMN read_epoch TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX messages_mentions ON messages (room_id, ts, seq, epoch) WHERE mentions = 1`,
		`UPDATE rooms SET (read_ts, read_seq, read_epoch) = (
			SELECT ts, seq, epoch FROM messages m WHERE m.room_id = rooms.id
			ORDER BY ts DESC, seq DESC, epoch DESC LIMIT 1
		) WHERE EXISTS (SELECT 1 FROM messages m WHERE m.room_id = rooms.id)`,
	)
}

func execAll(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%w (in %.60q)", err, s)
		}
	}
	return nil
}

// migrate brings the database to version target (schemaVersion outside
// tests), one transaction per step.
func migrate(ctx context.Context, db *sql.DB, target int) error {
	var have int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("%w: the file is at schema version %d and this build knows up to %d; update Heartline, or move the file away to start an empty history", ErrNewerSchema, have, len(migrations))
	}
	for v := have; v < target; v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := migrations[v](ctx, tx); err != nil {
			tx.Rollback()
			return fmt.Errorf("upgrading the history schema to version %d: %w", v+1, err)
		}
		// PRAGMA takes no bound parameters; v+1 is an int we made.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("upgrading the history schema to version %d: %w", v+1, err)
		}
	}
	return nil
}
