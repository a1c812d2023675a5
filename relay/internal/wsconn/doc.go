// Package wsconn is the relay's WebSocket transport: one Conn per upgraded
// connection, with its send queue and writer, its reader and the reactor
// that parks it, heartbeat answers, close and eviction, and the liveness
// the relay's sweeper reads. It knows nothing of rooms; it knows
// shared/protocol for the heartbeat's spelling, close codes and the frames
// it sends itself (errors, pongs), and relay/metrics for its counters.
//
// What its owner sees: frames in (Handler.HandleText, one call per text
// message that is not a heartbeat), frames out (Send, Enqueue; Push and
// Kick for a fan-out: a batch's bytes are shared by every member's queue,
// never copied, and Kick writes each member's queue with one non-blocking
// write), Close and Evict, and the end (Handler.Ended with the leave
// reason). Performance properties it keeps: one write syscall per member
// per batch, idle connections parked with the Reactor with no goroutine
// (Linux; elsewhere each connection keeps a reader goroutine), heartbeats
// answered by the reactor without the JSON decoder, a bounded queue per
// connection (Shared.SendQueue; beyond it the peer is a slow consumer,
// closed with 4001).
//
// The pieces: conn.go (the queue, the writer, close, eviction), read.go
// (the reader, parking, the read-state machine, the heartbeat fast path),
// socket.go (BatchConn, the hijacked socket: bytes the reactor read handed
// on to gorilla, non-blocking direct reads and writes), reactor_*.go (one
// epoll instance waited for in Go's netpoller), frame.go (frame headers,
// ParsePing, AppendPong, CloseReason), live.go (the liveness table),
// upgrade.go (NewUpgrader, HijackWriter), api.go (Shared, Handler, New,
// Start and the accessors).
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
