// Package server is the Heartline relay as a library: rooms, members,
// heartbeat expiry, durable history through relay/store, the HTTP endpoints
// (/ws, health, metrics, avatars, admin) and graceful shutdown. The relay's
// main, the desktop's host mode and the tests all run it through this API:
//
//	srv, err := server.New(server.Config{DataDir: dir, Listen: "127.0.0.1:0"})
//	err = srv.Start()          // or srv.Serve(ctx), or mount srv.Handler()
//	addr := srv.Addr()         // the bound address
//	err = srv.Shutdown(ctx)    // readyz 503, close 1001 to everyone, flush the store
//
// # Where things are
//
//	server.go    Server: New, Start, Serve, Shutdown, restore after a restart
//	config.go    Config, its defaults and Validate
//	http.go      the HTTP routes, the upgrade, connection caps, admin, avatars
//	handle.go    one inbound frame: hello, msg, ping, bye; the rate limit
//	room.go      the room and member types; finding, creating, restoring a room
//	members.go   join, return, away, bye, leave, the grace period's end
//	commit.go    msg -> seq -> store -> drainer -> acks and the batch
//	fanout.go    the fan-out batch (framed once, shared) and broadcast
//	history.go   the welcome and its history
//	sweep.go     the one timer: silence, hello timeout, grace, limiters
//	conn.go      a connection as the rooms see it: its room and member, its end
//	shared.go    Redis mode (Config.RedisURL): the room as this relay's view of
//	             a room in Redis (relay/redisengine), events applied in order
//
// # Two engines
//
// A room's truth (seq, history, roster, presence) lives in one of two
// places. By default it is the room itself, with history and members made
// durable by relay/store (bbolt): join, send, linkDropped, bye and sweep
// decide under room.mu. With Config.RedisURL it is Redis, shared by every
// relay: the same five entry points hand over to their *Shared versions in
// shared.go, which ask Redis first (one script per change) and apply the
// outcome as every relay does, from the room's channel, in seq and roster
// version order. Connections, heartbeats and the fan-out batch are the same
// code in both.
//
// The WebSocket transport underneath is relay/internal/wsconn: a
// connection's send queue and writer, its reader and the reactor that parks
// it, heartbeat answers, close and eviction, the liveness the sweeper reads,
// and what it all assumes of gorilla/websocket. The rooms see frames in
// (conn.HandleText), frames out (Send, Push and Kick, Close, Evict) and the
// end (conn.Ended with the leave reason).
//
// # Concurrency model
//
// See also docs/ARCHITECTURE.md. Each connection has at most one reader
// goroutine, running only while its socket has input (in between, on Linux,
// the connection is parked with the reactor, one epoll goroutine that also
// answers heartbeats), and at most one writer goroutine, started on demand
// when its queue has frames and gone when it is empty; each room's state is
// guarded by its own mutex (no global lock on the message path); store
// commits come back on the store's goroutine and are applied to the room by
// a per-room drainer, so no reader ever waits on a disk write; one sweeper
// goroutine expires silent connections, hello timeouts and grace periods.
//
// # Locks, and the order they are taken in
//
// A goroutine holding a lock of one tier may take a lock of a later tier,
// never one of its own tier or an earlier one. No lock is held across a
// socket read or write.
//
//	tier  lock                 guards                                          taken under it
//	1     room.mu              a room: members, byKey, byName, seq, committed,  wsconn.Conn.mu (push, evict,
//	                           pending, inflight, the drain's batch, dead       close), conn.mu (attach),
//	                                                                            Server.roomsMu (sweep forgets
//	                                                                            the room), Server.mu (welcome's
//	                                                                            STUNPorts), store
//	2     wsconn.Conn.mu       a connection's queue, writer turn (writing),    metrics only
//	                           closing, close code, readerDone, exitReason
//	2     conn.mu              the room and member a connection joined         nothing
//	2     Server.roomsMu       the rooms map, the stored room names (MaxRooms) addrTable.mu (admitNewRoom's
//	                                                                            roomCreates)
//	2     Server.mu            ln, stun, httpSrv, served, shutdown, the ops    the STUN responder's Ports
//	                           listener
//	3     store (relay/store)  its queue (Store.mu, shared to enqueue) and     nothing of this package: its
//	                           bbolt's transactions                            callbacks run on the committer
//	                                                                            goroutine, with no store lock
//	4     room.doneMu          the finished commits waiting for the drainer    nothing
//	4     Server.connsMu       the connection table (liveness slots), the      nothing
//	                           per-IP and total reservation counts
//	4     wsconn.Reactor.mu    the reactor's slot -> connection table          nothing
//	4     addrTable.mu         a per-address table: the avatar and room-       nothing
//	                           creation limiters (ipLimiter), authThrottle
//	4     hostAllowlist.       the host names already logged as refused        nothing
//	      refusedMu
//
// Consequences the code relies on:
//
//   - The store's callbacks (room.completed) take only room.doneMu, so
//     appending under room.mu cannot deadlock with a commit coming back;
//     the drainer takes doneMu and room.mu one after the other, never both.
//
//   - A connection never takes room.mu while holding either of its locks:
//     its reader reads room and member under conn.mu (roomMember), lets go,
//     then calls into the room (linkDropped, bye, send); the transport
//     calls its handler (HandleText, Ended, LogAttrs) with no lock held.
//
//   - The sweeper takes Server.connsMu to collect, lets go, then evicts; it
//     takes room.mu only with TryLock, so it never waits for a busy room.
//
//   - A metrics scrape takes Server.roomsMu (roomSizes) inside prometheus's
//     registry lock; nothing takes a registry lock under roomsMu (room sizes
//     are atomics, gauges lock-free).
//
//   - The reactor holds reactor.mu only to look up the connections of one
//     wake-up, then reads and answers them with no lock held.
//
//   - Writes to the socket (Kick, writeLoop) happen with no lock held: the
//     writer's turn (writing) is taken and given back under wsconn.Conn.mu.
//
//   - room.mu is held while the store enqueues a member change (PutMember,
//     DeleteMember), which waits if the store's queue is full; messages use
//     TryAppend, which never waits.
//
//   - Redis mode never holds room.mu across a Redis round trip: joinShared,
//     publishLoop, catchUp and the Redis sweep call Redis with no lock and
//     take room.mu afterwards to apply what came back. Unsubscribing a
//     room checks Server.roomsMu under the subscriber's own lock (a lock
//     of relay/redisengine taken before roomsMu, never under it). The pub/sub
//     callback (onRedisEvents) takes Server.roomsMu to find the room, lets
//     go, and queues the event for the room's drainer (room.doneMu only).
//
// TestLockOrderUnderRace drives the paths that hold two of these at once
// (join, fan-out, eviction, the sweeper, shutdown) at the same time, for the
// race detector.
package server
