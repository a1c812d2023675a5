// What the browser keeps: the outbox in IndexedDB (what was typed survives
// a reload or a dead link), the join settings and the member keys in
// localStorage (a key per room, so a reload is the same member).

const DB = 'heartline';
const OUTBOX = 'outbox';

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

// Outbox is the IndexedDB store of messages not yet acked, by room.
export class Outbox {
  static async open() {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => {
      const s = r.result.createObjectStore(OUTBOX, { keyPath: 'id' });
      s.createIndex('room', 'room');
    };
    const o = new Outbox();
    o.db = await request(r);
    return o;
  }

  async load(room) {
    const tx = this.db.transaction(OUTBOX, 'readonly');
    const items = await request(tx.objectStore(OUTBOX).index('room').getAll(room));
    return items.sort((a, b) => a.order - b.order);
  }

  // put and delete resolve once the write is committed; writes are applied
  // in the order they were asked for (IndexedDB orders transactions on one store).
  put(item) { return this.#write((s) => s.put(item)); }
  delete(id) { return this.#write((s) => s.delete(id)); }

  #write(op) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(OUTBOX, 'readwrite');
      op(tx.objectStore(OUTBOX));
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('the write was aborted'));
    });
  }
}

// MemoryOutbox stands in where IndexedDB is unavailable (a private window
// in some browsers): the outbox then lasts as long as the page.
export class MemoryOutbox {
  constructor() { this.items = new Map(); }
  async load(room) { return [...this.items.values()].filter((i) => i.room === room).sort((a, b) => a.order - b.order); }
  async put(item) { this.items.set(item.id, item); }
  async delete(id) { this.items.delete(id); }
}

const PREFS = 'heartline.prefs';

export function loadPrefs() {
  try {
    const p = JSON.parse(localStorage.getItem(PREFS) || '{}');
    return p && typeof p === 'object' ? p : {};
  } catch {
    return {};
  }
}

export function savePrefs(p) {
  try { localStorage.setItem(PREFS, JSON.stringify(p)); } catch { /* storage full or blocked: the form asks again */ }
}

// memberKey returns this browser's key for room, made once with the Web
// Crypto API's random generator (43 base64url characters: 256 bits).
export function memberKey(room) {
  const name = 'heartline.key.' + room;
  let key = null;
  try { key = localStorage.getItem(name); } catch { /* blocked storage: a key for this page only */ }
  if (key && key.length >= 16 && key.length <= 128) return key;
  const b = crypto.getRandomValues(new Uint8Array(32));
  key = btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  try { localStorage.setItem(name, key); } catch { /* see above */ }
  return key;
}
