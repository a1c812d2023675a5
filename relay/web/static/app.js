// The web client's page: the join form, then the room (timeline, members,
// composer, banner), driven by the Engine's events.
import { Engine } from './link.js';
import { Outbox, MemoryOutbox, loadPrefs, savePrefs, memberKey } from './store.js';
import { Timeline, avatar, avatarURL, el } from './timeline.js';

const $ = (id) => document.getElementById(id);
const ROOM_RE = /^[a-z0-9_-]{1,32}$/;
const BANNER_GRACE = 1500; // a blip shorter than this shows no banner

let session = null; // the room being shown

// The outbox database opens while the page sets up, not after.
const storeReady = Outbox.open().catch(() => new MemoryOutbox());

// nameProblem mirrors the relay's rule: 1-32 characters after trimming, no
// control characters. The relay checks again (and for uniqueness).
function nameProblem(name) {
  const n = [...name.trim()].length;
  if (n === 0) return 'Enter your name.';
  if (n > 32) return 'Your name is too long: at most 32 characters.';
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'Your name has a control character in it.';
  return '';
}

function roomFromPath() {
  const m = /^\/r\/([^/]+)$/.exec(location.pathname);
  if (!m) return '';
  try { return decodeURIComponent(m[1]); } catch { return m[1]; }
}

// --- join form -------------------------------------------------------------

async function showJoin(message, focus) {
  const prefs = loadPrefs();
  if (session) { session.stop(); session = null; }
  $('room').hidden = true;
  $('join').hidden = false;
  document.title = 'Heartline';
  $('name').value = prefs.name || '';
  $('room-name').value = roomFromPath() || prefs.room || 'lobby';
  if (prefs.token) { $('token').value = prefs.token; $('token-field').hidden = false; }
  $('join-error').textContent = message || '';
  const target = $(focus || (prefs.name ? 'join-button' : 'name'));
  target.focus();
  requestAnimationFrame(() => performance.mark('heartline-join-form'));
  // The pictures come after the form is up: typing need not wait for them.
  await fillAvatars(prefs.avatar || 'builtin:default');
}

async function fillAvatars(selected) {
  const box = $('avatar-choices');
  let names = ['default'];
  try {
    const r = await fetch('/v1/avatars');
    if (r.ok) names = (await r.json()).builtin || names;
  } catch { /* the relay is unreachable: the default still works */ }
  box.replaceChildren();
  const choices = names.map((n) => 'builtin:' + n);
  choices.push('');
  if (selected.startsWith('sha256:')) choices.unshift(selected);
  for (const value of choices) {
    const id = 'av-' + (value || 'none').replace(/[^a-z0-9]/gi, '-');
    const input = el('input');
    input.type = 'radio';
    input.name = 'avatar';
    input.value = value;
    input.id = id;
    input.checked = value === selected;
    const label = el('label', 'avatar-choice');
    label.htmlFor = id;
    const title = value === '' ? 'Initials' : value.startsWith('sha256:') ? 'Your picture' : value.slice(8);
    label.title = title;
    label.append(avatar({ avatar: value, name: $('name').value || '?', id: 'you' }, 40), el('span', 'sr-only', title));
    box.append(input, label);
  }
  if (!box.querySelector('input:checked')) box.querySelector('input').checked = true;
}

async function uploadAvatar(file) {
  const err = $('join-error');
  err.textContent = 'Uploading the picture…';
  const headers = { 'Content-Type': file.type || 'application/octet-stream' };
  const token = $('token').value.trim();
  if (token) headers.Authorization = 'Bearer ' + token;
  try {
    const r = await fetch('/v1/avatars', { method: 'POST', body: file, headers });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      if (r.status === 401) $('token-field').hidden = false;
      err.textContent = 'The picture was not stored: ' + (body.message || r.statusText) + '.';
      return;
    }
    err.textContent = '';
    await fillAvatars(body.avatar);
  } catch (e) {
    err.textContent = 'The picture could not be sent: the relay is not reachable (' + e.message + ').';
  }
}

function submitJoin(ev) {
  ev.preventDefault();
  const name = $('name').value.trim();
  const room = $('room-name').value.trim();
  const err = $('join-error');
  const problem = nameProblem(name);
  if (problem) { err.textContent = problem; $('name').focus(); return; }
  if (!ROOM_RE.test(room)) {
    err.textContent = 'The room name may have only lowercase letters, digits, - and _ (1 to 32).';
    $('room-name').focus();
    return;
  }
  const checked = document.querySelector('input[name=avatar]:checked');
  const prefs = Object.assign(loadPrefs(), {
    name, room, avatar: checked ? checked.value : 'builtin:default', token: $('token').value.trim(), joined: room,
  });
  savePrefs(prefs);
  if (location.pathname !== '/r/' + room) history.pushState(null, '', '/r/' + room);
  enterRoom(prefs);
}

// --- the room --------------------------------------------------------------

async function enterRoom(prefs) {
  const store = await storeReady;
  const items = await store.load(prefs.room).catch(() => []);
  $('join').hidden = true;
  $('room').hidden = false;
  session = new Session(prefs, store, items);
  session.start();
  $('message').focus();
}

class Session {
  constructor(prefs, store, items) {
    this.prefs = prefs;
    this.room = prefs.room;
    this.members = new Map();
    this.you = null;
    this.unread = 0;
    this.unseen = 0;
    this.atBottom = true;
    this.bannerT = 0;
    this.tickT = 0;
    this.timeline = new Timeline($('log'), $('canvas'), {
      onRetry: (id) => this.engine.retry(id),
      onDiscard: (id) => this.engine.discard(id),
      onBottom: (b) => this.#bottom(b),
    });
    $('canvas').replaceChildren();
    $('room-title').textContent = '#' + this.room;
    for (const it of items) this.timeline.setOutboxItem(it);
    this.engine = new Engine({
      url: (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws',
      room: this.room, name: prefs.name, key: memberKey(this.room), avatar: prefs.avatar,
      token: prefs.token, store, items, onEvent: (t, d) => this.#event(t, d),
    });
    window.heartline = this; // for the browser tests and the curious
  }

  start() { this.engine.start(); this.#title(); }

  stop() {
    this.engine.close();
    this.timeline.destroy();
    clearTimeout(this.bannerT);
    clearInterval(this.tickT);
  }

  #event(type, d) {
    switch (type) {
      case 'state': this.#state(d); break;
      case 'welcome': this.#welcome(d.welcome); break;
      case 'message': this.#message(d.msg, d.own, d.replay); break;
      case 'gap':
        if (d.epochChanged) this.timeline.clear();
        this.timeline.gap(d.epochChanged
          ? 'The relay\'s history of this room was reset: older messages are gone.'
          : 'Some messages were missed while you were away: the relay no longer has them.');
        break;
      case 'outbox': this.timeline.setOutboxItem(d.item); this.#banner(); break;
      case 'joined': case 'presence': this.members.set(d.member.id, d.member); this.#members(); break;
      case 'left': this.members.delete(d.member.id); this.#members(); break;
      case 'relayerror': this.relayError = d.error; break;
      case 'storeerror':
        this.storeError = 'A typed message could not be saved in this browser (' + (d.error && d.error.message) + '): it is sent, but a reload before the relay has it loses it.';
        this.#banner();
        break;
    }
  }

  #welcome(w) {
    this.welcome = { recovered: w.recovered, epoch: w.epoch, seq: w.seq, history: (w.history || []).length };
    this.you = w.you;
    this.timeline.you = w.you.id;
    this.members = new Map((w.members || []).map((m) => [m.id, m]));
    this.members.set(w.you.id, w.you);
    this.#members();
    // The history is laid out on the next frame; the mark after it is the
    // room's first render (docs/BENCHMARKS.md).
    requestAnimationFrame(() => requestAnimationFrame(() => performance.mark('heartline-room')));
  }

  // message shows a room message; a live one from someone else is also
  // read out (the live log), counted when unseen and notified when hidden.
  // A welcome's history is only shown: fifty messages read out on joining
  // would drown a screen reader.
  #message(m, own, replay) {
    if (!this.timeline.add(m)) return;
    if (own) { if (!replay) this.timeline.jumpToLatest(); return; }
    if (replay) return;
    const ann = $('announce');
    ann.append(el('p', '', m.from.name + ': ' + m.text));
    while (ann.childElementCount > 20) ann.firstElementChild.remove();
    if (!this.atBottom) { this.unseen++; this.#jump(); }
    if (document.hidden) {
      this.unread++;
      this.#title();
      this.#notify(m);
    }
  }

  #notify(m) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const n = new Notification(m.from.name + ' in #' + this.room, {
        body: m.text.slice(0, 200), tag: 'heartline-' + this.room, icon: avatarURL(m.from.avatar) || undefined,
      });
      n.onclick = () => { window.focus(); n.close(); };
    } catch { /* some browsers only notify from a service worker */ }
  }

  #bottom(b) {
    this.atBottom = b;
    if (b && this.unseen) { this.unseen = 0; this.#jump(); }
  }

  #jump() {
    const j = $('jump');
    j.hidden = this.unseen === 0;
    j.textContent = this.unseen + ' new ↓';
    j.setAttribute('aria-label', this.unseen + ' new messages: jump to the latest');
  }

  seen() {
    if (!document.hidden && this.unread) { this.unread = 0; this.#title(); }
  }

  #title() {
    document.title = (this.unread ? '(' + this.unread + ') ' : '') + '#' + this.room + ' · Heartline';
  }

  #members() {
    const list = $('member-list');
    const sorted = [...this.members.values()].sort((a, b) =>
      (a.state === 'away') - (b.state === 'away') || a.name.localeCompare(b.name));
    list.replaceChildren(...sorted.map((m) => {
      const li = el('li', m.state === 'away' ? 'member away' : 'member');
      li.append(avatar(m, 28));
      const name = el('bdi', 'name', m.name);
      li.append(name);
      if (this.you && m.id === this.you.id) li.append(el('span', 'tag', 'you'));
      if (m.state === 'away') li.append(el('span', 'tag', 'away'));
      return li;
    }));
    const online = sorted.filter((m) => m.state !== 'away').length;
    const count = online + ' online' + (online < sorted.length ? ', ' + (sorted.length - online) + ' away' : '');
    // Offline, the list is what the relay said last, not who is there now.
    $('member-count').textContent = this.#live() ? count : 'last seen: ' + count;
    $('members-toggle').textContent = 'Members (' + online + ')';
  }

  #live() { return !this.state || this.state.phase === 'connected'; }

  #state(d) {
    const wasLive = this.#live();
    this.state = d;
    if (this.#live() !== wasLive) this.#members();
    const ls = $('link-state');
    ls.className = 'link-state ' + d.phase;
    ls.textContent = { connecting: 'Connecting', connected: 'Connected', waiting: 'Offline', stopped: 'Stopped' }[d.phase];
    clearTimeout(this.bannerT);
    if (d.phase === 'connected') {
      this.disconnectedAt = 0;
    } else if (!this.disconnectedAt) {
      this.disconnectedAt = Date.now();
    }
    if (d.phase === 'waiting' || d.phase === 'connecting') {
      // Show the banner only after a short grace: a blip is no news.
      const wait = this.disconnectedAt + BANNER_GRACE - Date.now();
      if (wait > 0) this.bannerT = setTimeout(() => this.#banner(), wait);
    }
    this.#banner();
    if (d.phase === 'stopped' && d.stop && !d.stop.left) this.#stopped(d.stop);
  }

  #stopped(stop) {
    if (stop.code === 4500) $('token-field').hidden = false;
    if (stop.code === 4500 || stop.code === 4501 || stop.code === 4504) {
      const focus = stop.code === 4500 ? 'token' : stop.code === 4501 ? 'name' : 'join-button';
      const prefs = loadPrefs();
      delete prefs.joined;
      savePrefs(prefs);
      showJoin(stop.reason, focus);
    }
  }

  #banner() {
    const b = $('banner');
    const text = $('banner-text');
    const d = this.state || { phase: 'connecting' };
    const retry = $('retry');
    const rejoin = $('rejoin');
    const countdown = $('banner-countdown');
    clearInterval(this.tickT);
    countdown.textContent = '';
    retry.hidden = rejoin.hidden = true;
    const pending = this.engine.pendingCount();
    const waiting = pending ? ' ' + pending + (pending === 1 ? ' message waits' : ' messages wait') + ' to be sent.' : '';
    const shown = d.phase === 'stopped' || (d.phase !== 'connected' && Date.now() - this.disconnectedAt >= BANNER_GRACE);
    if (!shown) {
      b.hidden = !this.storeError;
      text.textContent = this.storeError || '';
      return;
    }
    b.hidden = false;
    b.className = 'banner ' + d.phase;
    if (d.phase === 'stopped') {
      text.textContent = d.stop.reason + waiting;
      rejoin.hidden = false;
      rejoin.textContent = d.stop.left ? 'Join again' : 'Change and join again';
      return;
    }
    if (d.phase === 'connecting') {
      text.textContent = 'Reconnecting…' + (d.cause ? ' (' + d.cause + ')' : '') + waiting;
      return;
    }
    retry.hidden = false;
    // The banner is a live region: its sentence changes with the state, the
    // countdown (hidden from screen readers) every second.
    text.textContent = 'Connection lost: ' + d.cause + '. Reconnecting automatically.' + waiting;
    const tick = () => {
      const s = Math.max(0, Math.ceil((d.retryAt - Date.now()) / 1000));
      countdown.textContent = ' Next try in ' + s + ' s.';
    };
    tick();
    this.tickT = setInterval(tick, 1000);
  }

  leave() {
    const prefs = loadPrefs();
    delete prefs.joined;
    savePrefs(prefs);
    this.engine.leave();
  }
}

// --- page wiring -----------------------------------------------------------

function wire() {
  $('join-form').addEventListener('submit', submitJoin);
  $('name').addEventListener('input', () => {
    const initials = document.querySelector('label[for="av-none"] .initials');
    if (initials) initials.replaceWith(avatar({ avatar: '', name: $('name').value || '?', id: 'you' }, 40));
  });
  $('avatar-file').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) uploadAvatar(f); e.target.value = ''; });
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const box = $('message');
    // Blank lines around a message are no part of it.
    const text = box.value.replace(/^\s*\n/, '').replace(/\n\s*$/, '');
    if (!text.trim() || !session) return;
    session.engine.send(text);
    box.value = '';
    grow(box);
  });
  $('message').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('message').addEventListener('input', (e) => grow(e.target));
  $('retry').addEventListener('click', () => session && session.engine.retryNow());
  $('rejoin').addEventListener('click', () => showJoin('', 'join-button'));
  $('leave').addEventListener('click', () => session && session.leave());
  $('jump').addEventListener('click', () => { if (session) { session.timeline.jumpToLatest(); $('message').focus(); } });
  const toggle = $('members-toggle');
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    $('members').classList.toggle('open', open);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('members').classList.contains('open')) {
      toggle.setAttribute('aria-expanded', 'false');
      $('members').classList.remove('open');
      toggle.focus();
    }
  });
  const notify = $('notify');
  if ('Notification' in window && Notification.permission === 'default') {
    notify.hidden = false;
    notify.addEventListener('click', async () => {
      await Notification.requestPermission();
      notify.hidden = Notification.permission === 'default';
      notify.textContent = Notification.permission === 'granted' ? 'Notifications on' : 'Notifications blocked';
      notify.disabled = true;
    });
  }
  // A network or visibility change is a reason to look at the link now.
  window.addEventListener('online', () => session && session.engine.check());
  window.addEventListener('offline', () => session && session.engine.check());
  document.addEventListener('visibilitychange', () => {
    if (!session) return;
    if (!document.hidden) { session.engine.check(); session.seen(); }
  });
  window.addEventListener('focus', () => session && session.seen());
  // Leaving the page closes the socket without bye: the relay keeps the
  // member away for its grace period, and a reload comes back as the same one.
  window.addEventListener('pagehide', () => session && session.engine.close());
  // A page restored from the back/forward cache had its socket closed: connect again.
  window.addEventListener('pageshow', (e) => { if (e.persisted && session) session.engine.start(); });
  window.addEventListener('popstate', () => boot());
}

function grow(box) {
  box.style.height = 'auto';
  box.style.height = Math.min(box.scrollHeight, 160) + 'px';
}

function boot() {
  // An invite address carries the token after #token=; keep it out of the
  // address bar (and of screenshots) once read.
  const hash = new URLSearchParams(location.hash.slice(1));
  const prefs = loadPrefs();
  if (hash.get('token')) {
    prefs.token = hash.get('token');
    savePrefs(prefs);
    history.replaceState(null, '', location.pathname);
  }
  const room = roomFromPath();
  if (room && !ROOM_RE.test(room)) { showJoin('"' + room + '" is not a room name: use lowercase letters, digits, - and _.', 'room-name'); return; }
  const target = room || prefs.joined;
  if (prefs.name && prefs.joined && target === prefs.joined) {
    if (!room) history.replaceState(null, '', '/r/' + target);
    if (session && session.room === target) return;
    if (session) { session.stop(); session = null; }
    enterRoom(Object.assign(prefs, { room: target }));
  } else {
    showJoin();
  }
}

wire();
boot();
