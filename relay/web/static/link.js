// The link to the relay: the same behaviour as the desktop's engine
// (shared/client) in a browser. Hello with the member key, heartbeat pings
// at the welcome's interval, a dead link noticed after the welcome's timeout
// without any frame, reconnect with exponential backoff and full jitter,
// the close-code classes, resume with {epoch, last_seq}, and the outbox
// resent with the same ids until the relay acks them.

import { after, every, cancel } from './timers.js';

const HELLO_TIMEOUT = 10000; // protocol: a client waits at most 10 s for its welcome
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 30000;
const STABLE_AFTER = 30000; // a link up this long resets the attempt count
const MAX_RETRY_AFTER = 600000;
const CHECK_WINDOW = 5000; // after a network change, how long a ping may take
const BYE_WAIT = 2000;
const MAX_RATE_RETRIES = 5;

// ceiling is the largest delay of a (1-based) attempt; delay picks one
// uniformly below it ("full jitter"), so clients dropped together by a
// restarting relay do not come back together.
export function ceiling(attempt) {
  return Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (Math.max(1, attempt) - 1));
}
export function delay(attempt, r = Math.random()) {
  return Math.floor(r * ceiling(attempt));
}

// shouldReconnect is the close code's class: 4000-4499 and the 1xxx codes
// other than 1000 retry, 4500-4999 (and 1000 after bye, 4002 replaced) stop.
export function shouldReconnect(code) {
  if (code === 1000 || code === 4002) return false;
  return !(code >= 4500 && code <= 4999);
}

const closeText = {
  1000: 'normal closure', 1001: 'relay shutting down or restarting', 1006: 'connection lost',
  1009: 'frame too large', 4000: 'heartbeat timeout', 4001: 'too slow to keep up',
  4002: 'replaced by a newer connection', 4003: 'no hello in time, or protocol error',
  4004: 'too many failed sign-ins', 4500: 'unauthorized', 4501: 'name taken', 4502: 'kicked',
  4503: 'protocol version not supported', 4504: 'hello refused', 4505: 'room full',
};

// stopReason is what the person reads when the relay refuses for good.
export function stopReason(code, relayErr) {
  const detail = relayErr && relayErr.message ? relayErr.message : '';
  switch (code) {
    case 1000: return 'The relay ended the session: join again to continue.';
    case 4002: return 'This room is open in another tab or window with the same identity; this one stopped.';
    case 4500: return 'The relay needs an access token (or the token is wrong): enter it and join again.';
    case 4501: return 'That name is taken in this room: choose another name.';
    case 4502: return 'You were removed from this room.';
    case 4503: return 'This relay speaks another protocol version: reload the page.';
    case 4504: return 'The relay refused to join' + (detail ? ': ' + detail : '') + '. Fix it and join again.';
    case 4505: return 'The room is full: try again later, or ask whoever runs the relay to raise the limit.';
  }
  return 'The relay closed the link (' + code + ' ' + (closeText[code] || '') + ').';
}

// SeqTracker knows the gap-free last_seq a resume asks for: the highest
// seq up to which every message is held.
export class SeqTracker {
  constructor() { this.last = 0; this.above = new Set(); }
  add(seq) {
    if (!seq || seq <= this.last) return false;
    if (seq !== this.last + 1) {
      if (this.above.has(seq)) return false;
      this.above.add(seq);
      return true;
    }
    this.last = seq;
    this.#climb();
    return true;
  }
  acceptGapUpTo(seq) {
    if (seq <= this.last) return;
    this.last = seq;
    for (const s of this.above) if (s <= seq) this.above.delete(s);
    this.#climb();
  }
  reset() { this.last = 0; this.above.clear(); }
  #climb() {
    while (this.above.has(this.last + 1)) { this.above.delete(this.last + 1); this.last++; }
  }
}

// randomId is a client message id (16 characters of base64url).
export function randomId(bytes = 12) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// Engine keeps one room's link. Events go to onEvent(type, data):
//   state {phase, cause, retryAt, stop}      phase: connecting, connected, waiting, stopped
//   welcome {welcome}                        members, you, room
//   message {msg, own, replay}               a room message, once per seq (replay: from a welcome's history)
//   gap {epochChanged}                       the relay no longer has what was missed
//   outbox {item}                            an outbox item changed (status pending, failed, sent, discarded)
//   joined / presence / left {member, reason}
//   relayerror {error}                       an error frame not about a message
//   storeerror {error}                       the outbox could not be saved
export class Engine {
  constructor(opts) {
    this.o = opts; // url, room, name, key, avatar, token, store, onEvent, items
    this.outbox = (opts.items || []).slice();
    this.seqs = new SeqTracker();
    this.epoch = '';
    this.phase = 'idle';
    this.attempt = 0;
    this.ws = null;
    this.l = null;
    this.retryT = 0;
    this.retryAt = 0;
    this.leaving = false;
  }

  emit(type, data) { this.o.onEvent(type, data || {}); }

  start() { this.#connect(); }

  setPhase(phase, extra) {
    this.phase = phase;
    this.emit('state', Object.assign({ phase }, extra));
  }

  #connect() {
    cancel(this.retryT);
    this.retryAt = 0;
    this.setPhase('connecting', { cause: this.lastCause });
    let ws;
    try {
      ws = new WebSocket(this.o.url);
    } catch (e) {
      this.#dropped('cannot open a websocket to the relay: ' + e.message, 0);
      return;
    }
    this.ws = ws;
    this.l = {
      welcomed: false, written: new Set(), inflight: new Map(), refusals: new Map(),
      cautious: false, pausedUntil: 0, lastErr: null, welcomedAt: 0, you: null,
      interval: 0, timeout: 0, timers: [],
    };
    const l = this.l;
    l.helloT = after(() => this.#dead('the relay did not answer within ' + HELLO_TIMEOUT / 1000 + ' s'), HELLO_TIMEOUT);
    ws.onopen = () => {
      if (ws !== this.ws) return;
      l.opened = true;
      const hello = {
        type: 'hello', v: 1, room: this.o.room, name: this.o.name, key: this.o.key,
        avatar: this.o.avatar || '', client: 'heartline-web/1',
      };
      if (this.o.token) hello.token = this.o.token;
      if (this.epoch) hello.resume = { epoch: this.epoch, last_seq: this.seqs.last };
      l.resumeSent = !!this.epoch;
      this.#write(hello);
    };
    ws.onmessage = (e) => { if (ws === this.ws) this.#frame(e.data); };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      // A socket that never opened reports 1006 too: nothing was dropped.
      if (!l.opened) this.#dropped('cannot reach the relay', 1006);
      else if (e.code === 1006 || e.code === 1005) this.#dropped('the relay or the network dropped it', 1006);
      else this.#dropped('closed by the relay: ' + e.code + ' ' + (e.reason || closeText[e.code] || ''), e.code);
    };
    ws.onerror = () => {}; // onclose follows with the code
  }

  #write(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  #frame(data) {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    if (!f || typeof f.type !== 'string') return;
    this.#alive();
    switch (f.type) {
      case 'welcome': this.#welcome(f); break;
      case 'msg': this.#deliver(f); break;
      case 'ack': this.#ack(f); break;
      case 'joined': this.emit('joined', { member: f.member }); break;
      case 'presence':
        if (this.l.you && f.member && f.member.id === this.l.you.id) this.l.you = f.member;
        this.emit('presence', { member: f.member });
        break;
      case 'left': this.emit('left', { member: f.member, reason: f.reason }); break;
      case 'pong': this.rtt = Date.now() - f.t; break;
      case 'error': this.#relayError(f); break;
    }
  }

  // alive restarts the dead-link timer: any frame proves the relay is there.
  #alive() {
    const l = this.l;
    cancel(l.probeT);
    if (!l.welcomed) return;
    cancel(l.deadT);
    l.deadT = after(() => this.#dead('no reply from the relay for ' + l.timeout / 1000 + ' s'), l.timeout);
  }

  #welcome(w) {
    const l = this.l;
    if (l.welcomed) return;
    l.welcomed = true;
    l.welcomedAt = Date.now();
    l.you = w.you;
    cancel(l.helloT);
    const hb = w.heartbeat || {};
    l.interval = hb.interval_ms > 0 ? hb.interval_ms : 10000;
    l.timeout = hb.timeout_ms > l.interval ? hb.timeout_ms : 25000;
    if (!(hb.interval_ms > 0) || !(hb.timeout_ms > hb.interval_ms)) { l.interval = 10000; l.timeout = 25000; }
    l.pingT = every(() => this.#ping(), l.interval);
    this.#alive();
    this.#ping(); // measure the round trip now rather than one interval later
    this.lastCause = '';
    this.setPhase('connected');
    this.emit('welcome', { welcome: w });
    const history = (w.history || []).slice().sort((a, b) => a.seq - b.seq);
    if (w.epoch !== this.epoch) {
      if (l.resumeSent) this.emit('gap', { epochChanged: true });
      this.epoch = w.epoch;
      this.seqs.reset();
      for (const m of history) this.#deliver(m, true);
      this.seqs.acceptGapUpTo(w.seq);
    } else if (w.recovered) {
      for (const m of history) this.#deliver(m, true);
    } else {
      this.emit('gap', { epochChanged: false });
      for (const m of history) this.#deliver(m, true);
      this.seqs.acceptGapUpTo(w.seq);
    }
    this.flush();
  }

  #ping() { this.#write({ type: 'ping', t: Date.now() }); }

  // check is an immediate look at the link after the network or the page's
  // visibility changed: a waiting reconnect goes now; a link that looks up
  // must answer a ping within a few seconds or counts as dead.
  check() {
    if (this.phase === 'waiting') { this.#connect(); return; }
    if (this.phase !== 'connected') return;
    const l = this.l;
    this.#ping();
    cancel(l.probeT);
    l.probeT = after(() => this.#dead('no answer from the relay after the network changed'), Math.min(CHECK_WINDOW, l.timeout));
  }

  retryNow() {
    if (this.phase === 'waiting') this.#connect();
  }

  #dead(cause) {
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onclose = null; try { ws.close(4000, 'no reply'); } catch { ws.close(); } }
    this.#dropped(cause, 0);
  }

  #stopTimers() {
    const l = this.l;
    if (!l) return;
    cancel(l.helloT); cancel(l.deadT); cancel(l.probeT);
    cancel(l.pauseT); cancel(l.byeT); cancel(l.pingT);
  }

  #dropped(cause, code) {
    const l = this.l;
    this.#stopTimers();
    this.ws = null;
    if (this.leaving) { this.setPhase('stopped', { stop: { code: 1000, reason: 'You left the room.', left: true } }); return; }
    this.lastCause = cause;
    const relayErr = l && l.lastErr;
    if (code && !shouldReconnect(code)) {
      this.setPhase('stopped', { cause, stop: { code, reason: stopReason(code, relayErr), error: relayErr } });
      return;
    }
    if (code === 1009) this.#oversized();
    if (l && l.welcomed && Date.now() - l.welcomedAt >= STABLE_AFTER) this.attempt = 0;
    this.attempt++;
    let wait = delay(this.attempt);
    if (relayErr && relayErr.retry_after_ms > 0 && !(l && l.welcomed)) {
      wait = Math.max(wait, Math.min(relayErr.retry_after_ms, MAX_RETRY_AFTER));
    }
    this.retryAt = Date.now() + wait;
    this.retryT = after(() => this.#connect(), wait);
    this.setPhase('waiting', { cause, retryAt: this.retryAt, code });
  }

  // leave says bye (the others see us leave at once) and stops.
  leave() {
    this.leaving = true;
    cancel(this.retryT);
    if (this.phase !== 'connected') { this.#stopTimers(); const ws = this.ws; this.ws = null; if (ws) ws.close(1000); this.setPhase('stopped', { stop: { code: 1000, reason: 'You left the room.', left: true } }); return; }
    this.#write({ type: 'bye' });
    this.l.byeT = after(() => { const ws = this.ws; this.ws = null; if (ws) ws.close(1000); this.#dropped('left', 1000); }, BYE_WAIT);
  }

  // close ends the link without bye (the page goes away): the relay keeps
  // the member away for its grace period, so a reload is no leave/join.
  close() {
    cancel(this.retryT);
    this.#stopTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'page closed');
  }

  // --- outbox -----------------------------------------------------------

  #save(item) {
    this.o.store.put(item).catch((e) => this.emit('storeerror', { error: e, item }));
  }

  #remove(id) {
    this.o.store.delete(id).catch((e) => this.emit('storeerror', { error: e }));
  }

  send(text) {
    const item = { id: randomId(), room: this.o.room, text, status: 'pending', reason: '', order: Date.now() * 1000 + (this.outbox.length % 1000) };
    this.outbox.push(item);
    this.#save(item);
    this.emit('outbox', { item });
    this.flush();
    return item;
  }

  retry(id) {
    const i = this.outbox.findIndex((it) => it.id === id);
    if (i < 0 || this.outbox[i].status !== 'failed') return;
    const item = Object.assign({}, this.outbox[i], { status: 'pending', reason: '', order: Date.now() * 1000 });
    this.outbox.splice(i, 1);
    this.outbox.push(item);
    this.#save(item);
    this.emit('outbox', { item });
    this.flush();
  }

  discard(id) {
    const i = this.outbox.findIndex((it) => it.id === id);
    if (i < 0 || this.outbox[i].status !== 'failed') return;
    const item = Object.assign({}, this.outbox[i], { status: 'discarded' });
    this.outbox.splice(i, 1);
    this.#remove(id);
    this.emit('outbox', { item });
  }

  // flush writes every pending message not yet written on this link, in
  // order (one at a time after a rate limit, until the outbox is empty).
  flush() {
    const l = this.l;
    if (this.phase !== 'connected' || !l || !l.welcomed || this.leaving || Date.now() < l.pausedUntil) return;
    let pending = false;
    for (const it of this.outbox) {
      if (it.status !== 'pending') continue;
      pending = true;
      if (l.written.has(it.id)) {
        if (l.cautious) return;
        continue;
      }
      l.written.add(it.id);
      l.inflight.set(it.id, (l.inflight.get(it.id) || 0) + 1);
      this.#write({ type: 'msg', id: it.id, text: it.text });
      if (l.cautious) return;
    }
    if (!pending) l.cautious = false;
  }

  #markSent(i, seq, ts) {
    const item = Object.assign({}, this.outbox[i], { status: 'sent', seq, ts });
    this.outbox.splice(i, 1);
    this.#forget(item.id);
    this.#remove(item.id);
    this.emit('outbox', { item });
    return item;
  }

  #forget(id) {
    const l = this.l;
    l.written.delete(id); l.inflight.delete(id); l.refusals.delete(id);
  }

  // deliver emits a room message once per seq; our own message still in
  // the outbox (its ack was lost with a link) counts as acked.
  #deliver(m, replay = false) {
    const you = this.l.you;
    const own = !!(you && m.from && m.from.id === you.id);
    if (own) {
      const i = this.outbox.findIndex((it) => it.id === m.id);
      if (i >= 0) this.#markSent(i, m.seq, m.ts);
    }
    if (this.seqs.add(m.seq)) this.emit('message', { msg: m, own, replay });
  }

  #ack(a) {
    const i = this.outbox.findIndex((it) => it.id === a.id);
    if (i >= 0 && this.outbox[i].status === 'pending') {
      const item = this.#markSent(i, a.seq, a.ts);
      this.seqs.add(a.seq);
      this.emit('message', { msg: { seq: a.seq, id: a.id, from: this.l.you, text: item.text, ts: a.ts }, own: true });
    }
    if (this.l.cautious) this.flush();
  }

  #fail(i, reason) {
    const item = Object.assign({}, this.outbox[i], { status: 'failed', reason });
    this.outbox[i] = item;
    this.#forget(item.id);
    this.#save(item);
    this.emit('outbox', { item });
  }

  #relayError(e) {
    const l = this.l;
    if (e.id) {
      const i = this.outbox.findIndex((it) => it.id === e.id);
      if (i >= 0 && this.outbox[i].status === 'pending') {
        if (e.code === 'rate_limited') this.#rateLimited(i, e);
        else this.#fail(i, e.message || 'the relay refused this message (' + e.code + ')');
        if (l.cautious) this.flush();
        return;
      }
    }
    l.lastErr = e;
    this.emit('relayerror', { error: e });
    if (l.cautious) this.flush();
  }

  // rateLimited: the relay refuses every later msg on this link until
  // retry_after_ms has passed, so this item and all after it go again, in
  // order, after the pause.
  #rateLimited(i, e) {
    const l = this.l;
    const id = this.outbox[i].id;
    const n = (l.inflight.get(id) || 0) - 1;
    l.inflight.set(id, n);
    if (n > 0 || !l.written.has(id)) return;
    const refusals = (l.refusals.get(id) || 0) + 1;
    l.refusals.set(id, refusals);
    if (refusals > MAX_RATE_RETRIES) this.#fail(i, 'The relay refused this message ' + refusals + ' times as sent too fast: try again later.');
    for (const it of this.outbox.slice(i)) l.written.delete(it.id);
    l.cautious = true;
    const wait = e.retry_after_ms > 0 ? e.retry_after_ms : 1000;
    const until = Date.now() + wait;
    if (until > l.pausedUntil) {
      l.pausedUntil = until;
      cancel(l.pauseT);
      l.pauseT = after(() => this.flush(), wait);
    }
    this.emit('outbox', { item: this.outbox[i], waiting: wait });
  }

  // oversized: a 1009 close can only be one of the messages written on
  // the link; the largest fails instead of cutting every link the same way.
  #oversized() {
    const l = this.l;
    let worst = -1, size = 0;
    this.outbox.forEach((it, i) => {
      if (it.status !== 'pending' || !l.written.has(it.id)) return;
      const n = JSON.stringify({ type: 'msg', id: it.id, text: it.text }).length;
      if (n > size) { worst = i; size = n; }
    });
    if (worst >= 0) this.#fail(worst, 'This message is too large for the relay: shorten it or split it, then retry.');
  }

  pendingCount() { return this.outbox.filter((it) => it.status === 'pending').length; }
}
