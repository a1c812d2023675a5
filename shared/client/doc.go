// Package client is Heartline's headless client engine: it dials a relay,
// says hello, keeps the link alive with heartbeats, notices dead links,
// reconnects with backoff, resumes the room's history without gaps or
// duplicates, and keeps an outbox so that nothing the person typed is lost.
// A UI drives it through a few methods (New, Run, Send, Retry, Discard,
// RetryNow, CheckNow, Leave) and renders its events; it never touches a
// socket.
//
// What the engine promises:
//
//   - One socket at a time. A link is closed, and its goroutines have
//     returned, before the next dial.
//   - Every room message is delivered once per seq (MessageReceived), live,
//     replayed after a reconnect, or as the client's own message once the
//     relay acked it. The ResumePoint (epoch, gap-free last seq) lets a later
//     run pick up where this one stopped.
//   - Send queues the message in the outbox before it returns, and never
//     waits on the disk: the engine writes it to the store (a file with
//     NewFileOutbox) on a goroutine of its own, in order, within moments,
//     and always before Run returns. Only a crash in those moments can
//     lose it; a write that fails is told (OutboxNotSaved). Pending messages are (re)sent in order on every
//     link until the relay acks them; the relay dedups their ids. A message
//     the relay refuses for good becomes Failed with a reason.
//   - Dead links are noticed by the heartbeat the relay's welcome announces:
//     no frame for its timeout closes the link (LinkDropped says why and how)
//     and the engine reconnects with full-jitter exponential backoff. Close
//     codes the protocol marks final (wrong token, name taken, room full...)
//     stop the engine with a sentence for the person (StopError).
//   - A wake from sleep or a change of the computer's network (addresses,
//     links, routes) is acted on at once, not after the heartbeat timeout:
//     a link whose address is gone is dropped, any other is checked with a
//     ping (Config.CheckTimeout, 1.5 s), and a dead one is made again
//     without the backoff wait (NetworkChanged, LinkChecked). One watcher
//     serves every engine of the process; Config.NoNetworkWatch turns it
//     off, CheckNow checks on demand, NotifyNetworkChange reports a change
//     the watcher cannot see.
//   - Events are never dropped and the engine never waits for their reader.
//
// All waiting goes through Config.Clock and all jitter through Config.Rand,
// so tests drive the engine's timing without sleeping.
package client
