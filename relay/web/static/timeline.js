// The message list: rows (day separators, messages grouped by sender, gap
// markers, outbox items) rendered with a virtual list, so a room with
// 10,000 messages keeps only the rows near the viewport in the DOM. User
// text only ever becomes text nodes (textContent), never markup.

const GROUP_MS = 5 * 60 * 1000;
const OVERSCAN = 800; // px rendered above and below the viewport

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function dayKey(ts) {
  const d = new Date(ts);
  return d.getFullYear() * 10000 + d.getMonth() * 100 + d.getDate();
}

function dayLabel(ts) {
  const k = dayKey(ts);
  const now = Date.now();
  if (k === dayKey(now)) return 'Today';
  if (k === dayKey(now - 86400000)) return 'Yesterday';
  return dayFmt.format(new Date(ts));
}

// avatarURL is the picture of a member's avatar field, or '' for initials.
export function avatarURL(avatar) {
  if (typeof avatar !== 'string') return '';
  let m = /^builtin:([a-z0-9_-]{1,64})$/.exec(avatar);
  if (m) return '/v1/avatars/builtin/' + m[1];
  m = /^sha256:([0-9a-f]{64})$/.exec(avatar);
  if (m) return '/v1/avatars/' + m[1];
  return '';
}

function hue(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h % 360;
}

// avatar draws a member's picture, or initials on a colour of its own.
export function avatar(member, size) {
  const url = avatarURL(member && member.avatar);
  const name = (member && member.name) || '?';
  if (url) {
    const img = el('img', 'avatar');
    img.src = url;
    img.alt = '';
    img.width = img.height = size;
    img.loading = 'lazy';
    return img;
  }
  const words = name.trim().split(/\s+/).filter(Boolean);
  const initials = words.slice(0, 2).map((w) => [...w][0]).join('').toUpperCase() || '?';
  const d = el('span', 'avatar initials', initials);
  d.setAttribute('aria-hidden', 'true');
  d.style.setProperty('--h', hue((member && member.id) || name));
  return d;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

// linkify appends text to parent as text nodes, with http(s) addresses as
// links that open in a new tab without giving it this page.
export function linkify(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    // Trailing punctuation ends a sentence, not the address (a closing
    // bracket only when the address does not open one).
    while (/[.,;:!?'")\]}]$/.test(url)) {
      const c = url.at(-1);
      if ((c === ')' && url.split('(').length > url.split(')').length - 1) ||
          (c === ']' && url.split('[').length > url.split(']').length - 1)) break;
      url = url.slice(0, -1);
    }
    let href = '';
    try {
      const u = new URL(url);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch { /* not an address after all: stays text */ }
    if (!href) continue;
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    const a = el('a', 'link', url);
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    parent.append(a);
    last = m.index + url.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// Timeline holds the room's messages and the outbox, and lays them out as rows.
export class Timeline {
  constructor(scroller, canvas, hooks) {
    this.scroller = scroller;
    this.canvas = canvas;
    this.hooks = hooks; // onRetry(id), onDiscard(id), onBottom(atBottom)
    this.entries = []; // {pos, msg} or {pos, gap}; sorted by pos
    this.seqs = new Set();
    this.outbox = new Map(); // id -> item
    this.rows = [];
    this.heights = new Map(); // row key -> measured px
    this.nodes = new Map(); // row key -> element in the DOM
    this.offsets = null;
    this.stick = true; // follow new messages while the reader is at the bottom
    this.width = scroller.clientWidth;
    this.you = '';
    this.scheduled = false;
    this.gone = new AbortController();
    scroller.addEventListener('scroll', () => {
      this.stick = this.atBottom();
      this.hooks.onBottom(this.stick);
      this.#paint();
    }, { passive: true, signal: this.gone.signal });
    this.resize = new ResizeObserver(() => {
      const w = this.scroller.clientWidth;
      if (w !== this.width) { this.width = w; this.heights.clear(); }
      this.update();
    });
    this.resize.observe(scroller);
  }

  // destroy lets go of the scroller and the canvas, for the next room's timeline.
  destroy() {
    this.gone.abort();
    this.resize.disconnect();
    this.destroyed = true;
    for (const node of this.nodes.values()) node.remove();
    this.nodes.clear();
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  }

  // clear forgets every message (the relay's history was reset: seqs start
  // again, so rows keyed by seq must not be reused).
  clear() {
    this.entries = [];
    this.seqs.clear();
    for (const node of this.nodes.values()) node.remove();
    this.nodes.clear();
    this.heights.clear();
    this.update();
  }

  // add takes a room message; it reports false for a seq already shown.
  add(msg) {
    if (this.seqs.has(msg.seq)) return false;
    this.seqs.add(msg.seq);
    const e = { pos: msg.seq, msg };
    const n = this.entries.length;
    if (n === 0 || this.entries[n - 1].pos < e.pos) this.entries.push(e);
    else {
      let lo = 0, hi = n;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (this.entries[mid].pos < e.pos) lo = mid + 1; else hi = mid; }
      this.entries.splice(lo, 0, e);
    }
    this.update();
    return true;
  }

  // addMany appends a batch (history) with one layout.
  addMany(msgs) { for (const m of msgs) { if (!this.seqs.has(m.seq)) { this.seqs.add(m.seq); this.entries.push({ pos: m.seq, msg: m }); } } this.entries.sort((a, b) => a.pos - b.pos); this.update(); }

  gap(text) {
    const last = this.entries.length ? this.entries[this.entries.length - 1].pos : 0;
    this.entries.push({ pos: last + 0.5, gap: text, key: 'g' + last + '-' + Date.now() });
    this.update();
  }

  setOutboxItem(item) {
    if (item.status === 'pending' || item.status === 'failed') this.outbox.set(item.id, item);
    else this.outbox.delete(item.id);
    this.update();
  }

  jumpToLatest() {
    this.stick = true;
    this.update();
    this.hooks.onBottom(true);
  }

  // update re-lays out the rows on the next frame (many changes, one layout).
  update() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; if (!this.destroyed) this.#layout(); });
  }

  #buildRows() {
    const rows = [];
    let prev = null;
    for (const e of this.entries) {
      if (e.gap) { rows.push({ key: e.key, kind: 'gap', text: e.gap }); prev = null; continue; }
      const m = e.msg;
      const day = dayKey(m.ts);
      if (!prev || dayKey(prev.ts) !== day) { rows.push({ key: 'd' + day, kind: 'day', ts: m.ts }); prev = null; }
      const head = !prev || prev.from.id !== m.from.id || m.ts - prev.ts > GROUP_MS;
      rows.push({ key: (head ? 'h' : 'm') + m.seq, kind: 'msg', m, head });
      prev = m;
    }
    for (const it of [...this.outbox.values()].sort((a, b) => a.order - b.order)) {
      rows.push({ key: 'o' + it.id + it.status, kind: 'out', item: it });
    }
    return rows;
  }

  // estimate is a row's height before it is measured: close estimates
  // mean fewer corrections while scrolling into unmeasured rows.
  #estimate(r) {
    if (r.kind === 'day') return 37;
    if (r.kind === 'gap') return 38;
    if (r.kind === 'out') return 56;
    const perLine = Math.max(20, (this.width - 80) / 7.6); // characters on a line
    let lines = 0;
    for (const part of r.m.text.split('\n')) lines += Math.max(1, Math.ceil(part.length / perLine));
    return (r.head ? 33 : 2) + 22 * lines;
  }

  #computeOffsets() {
    const n = this.rows.length;
    const off = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) {
      const r = this.rows[i];
      off[i + 1] = off[i] + (this.heights.get(r.key) ?? this.#estimate(r));
    }
    this.offsets = off;
  }

  #layout() {
    const stick = this.stick;
    this.rows = this.#buildRows();
    this.#computeOffsets();
    this.#paint(stick);
  }

  // paint puts the rows near the viewport in the DOM and measures them;
  // measured heights replace estimates (keeping the first visible row in
  // place, or the bottom when following).
  #paint(stick = this.stick) {
    const s = this.scroller;
    for (let pass = 0; pass < 3; pass++) {
      const total = this.offsets[this.rows.length];
      this.canvas.style.height = total + 'px';
      if (stick) s.scrollTop = total;
      const top = s.scrollTop - OVERSCAN;
      const bottom = s.scrollTop + s.clientHeight + OVERSCAN;
      const first = Math.max(0, this.#find(top));
      const keep = new Set();
      const fresh = [];
      for (let i = first; i < this.rows.length && this.offsets[i] < bottom; i++) {
        const r = this.rows[i];
        keep.add(r.key);
        let node = this.nodes.get(r.key);
        if (!node) {
          node = this.#render(r);
          this.nodes.set(r.key, node);
          this.canvas.append(node);
          fresh.push(i);
        }
        node.style.transform = 'translateY(' + this.offsets[i] + 'px)';
      }
      for (const [key, node] of this.nodes) {
        if (!keep.has(key)) { node.remove(); this.nodes.delete(key); }
      }
      // Measure the new rows; correct the layout if estimates were off.
      const anchor = this.#find(s.scrollTop);
      const anchorShift = s.scrollTop - (this.offsets[anchor] || 0);
      let changed = false;
      for (const i of fresh) {
        const r = this.rows[i];
        const h = this.nodes.get(r.key).offsetHeight;
        if (h && h !== (this.heights.get(r.key) ?? this.#estimate(r))) changed = true;
        if (h) this.heights.set(r.key, h);
      }
      if (!changed) break;
      this.#computeOffsets();
      if (!stick) s.scrollTop = (this.offsets[anchor] || 0) + anchorShift;
    }
    if (stick) this.hooks.onBottom(true);
  }

  // find is the index of the row at y (binary search over the offsets).
  #find(y) {
    const off = this.offsets;
    let lo = 0, hi = this.rows.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (off[mid] <= y) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  #render(r) {
    if (r.kind === 'day') {
      const d = el('div', 'row day');
      d.append(el('span', '', dayLabel(r.ts)));
      return d;
    }
    if (r.kind === 'gap') {
      const d = el('div', 'row gap', r.text);
      return d;
    }
    if (r.kind === 'out') return this.#renderOut(r.item);
    const m = r.m;
    const row = el('div', r.head ? 'row msg head' : 'row msg');
    row.dataset.seq = m.seq;
    if (m.from.id === this.you) row.classList.add('own');
    if (r.head) {
      row.append(avatar(m.from, 36));
      const meta = el('div', 'meta');
      const name = el('bdi', 'name', m.from.name);
      meta.append(name, this.#time(m.ts));
      row.append(meta);
    } else {
      row.append(this.#time(m.ts, 'side'));
    }
    const text = el('div', 'text');
    text.dir = 'auto';
    linkify(text, m.text);
    row.append(text);
    return row;
  }

  #time(ts, cls) {
    const d = new Date(ts);
    const t = el('time', cls || '', timeFmt.format(d));
    t.dateTime = d.toISOString();
    t.title = fullFmt.format(d);
    return t;
  }

  #renderOut(item) {
    const row = el('div', 'row msg out ' + item.status);
    row.dataset.outbox = item.id;
    const text = el('div', 'text');
    text.dir = 'auto';
    linkify(text, item.text);
    const note = el('div', 'note');
    if (item.status === 'failed') {
      note.append(el('span', 'reason', 'Not sent: ' + item.reason + ' '));
      const retry = el('button', 'small', 'Retry');
      retry.type = 'button';
      retry.addEventListener('click', () => this.hooks.onRetry(item.id));
      const discard = el('button', 'small ghost', 'Discard');
      discard.type = 'button';
      discard.addEventListener('click', () => this.hooks.onDiscard(item.id));
      note.append(retry, discard);
    } else {
      note.textContent = 'Waiting to be sent…';
    }
    row.append(text, note);
    return row;
  }
}
