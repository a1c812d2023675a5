// Package wsconn is the relay's WebSocket layer under its connections: the
// hijacked socket (BatchConn: bytes the reactor read handed on to gorilla,
// non-blocking direct reads and writes), the reactor that watches idle
// sockets with one epoll instance (Reactor; Linux only, elsewhere every
// connection keeps a reader goroutine), the frame header the writer frames
// its batches with (AppendFrameHeader), the heartbeat fast path (ParsePing,
// AppendPong: a ping is answered without the JSON decoder), close reasons
// that fit a close frame (CloseReason), and the liveness table the sweeper
// reads (Table, Liveness). It knows nothing of rooms; it knows
// shared/protocol only for the heartbeat's spelling.
//
// The upgrade goes through NewUpgrader and HijackWriter, so that gorilla
// reads through a small bufio.Reader of ours and the socket is a BatchConn.
//
// # What it assumes of gorilla/websocket
//
// The transport lets gorilla do the handshake, parse inbound frames and write control
// frames, and does everything else itself: it frames and batches its own
// writes, answers heartbeats without gorilla, and parks idle sockets with
// the reactor. That relies on these details of gorilla (v1.5.3), each pinned
// by a test in gorilla_test.go, so that an upgrade that changes one fails a
// test instead of corrupting a stream:
//
//  1. With ReadBufferSize 0, Upgrade reads through the bufio.Reader Hijack
//     returned when it holds more than 256 bytes (HijackWriter's, of
//     ReadBufferSize), and gorilla keeps no other read buffer: the reader
//     parks only when that reader and BatchConn's pending bytes are empty.
//     (TestGorillaReadsThroughTheHijackedReader)
//  2. A control frame (our close frame; gorilla's reply to the peer's close)
//     is one Write on the net.Conn from Hijack, so it never lands inside one
//     of the writer's batches, each also one write. (TestGorillaWritesAControlFrameInOneWrite)
//  3. Upgrade clears the deadlines net/http set (ReadTimeout, WriteTimeout):
//     an upgraded socket has none until the relay sets one to close or
//     evict. (TestGorillaClearsTheHTTPServerDeadlines)
//  4. A frame over SetReadLimit makes the read fail with ErrReadLimit after
//     gorilla itself wrote close 1009 (the relay's readEnded sends none).
//     (TestGorillaAnswersAnOversizedFrameWith1009)
//  5. With a WriteBufferPool gorilla holds no write buffer between frames,
//     and the relay never asks it to write a data frame, so an idle member
//     has none. (TestGorillaHoldsNoWriteBufferWhenIdle)
//  6. Upgrade refuses a client whose bytes arrived with its request (they
//     would sit in net/http's reader, which HijackWriter does not replace
//     then). (TestGorillaRefusesDataBeforeTheHandshake)
//
// Not pinned, because gorilla documents it: one concurrent reader and one
// concurrent writer, with WriteControl safe alongside both. Known gap: the
// writer's direct writes (RawWrite) bypass net.Conn's write lock, and a
// batch the socket takes only in part is finished by a later write; a close
// reply gorilla writes from the reader in between (the peer sent close
// meanwhile) lands inside that frame.
package wsconn
