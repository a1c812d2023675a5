// Timers for the link. A hidden page's own timers are throttled (Chrome
// runs a background tab's chained timers once a minute after five minutes),
// which would miss heartbeats and let the relay drop a healthy member; a
// dedicated worker's timers are not tied to the page's visibility, so the
// link's timers tick there and post back. Without workers (or if the worker
// cannot start) the page's own timers do.

let worker = null;
let next = 1;
const pending = new Map(); // id -> callback

function start() {
  try {
    worker = new Worker(new URL('./tick.js', import.meta.url));
    worker.onmessage = (e) => {
      const fn = pending.get(e.data);
      if (!fn) return;
      if (!fn.repeat) pending.delete(e.data);
      fn.cb();
    };
    worker.onerror = () => { worker = null; };
  } catch {
    worker = null;
  }
}
start();

export function after(cb, ms) {
  if (!worker) return setTimeout(cb, ms);
  const id = 'w' + next++;
  pending.set(id, { cb, repeat: false });
  worker.postMessage({ id, ms });
  return id;
}

export function every(cb, ms) {
  if (!worker) return setInterval(cb, ms);
  const id = 'w' + next++;
  pending.set(id, { cb, repeat: true });
  worker.postMessage({ id, ms, repeat: true });
  return id;
}

export function cancel(id) {
  if (typeof id === 'string') {
    if (pending.delete(id) && worker) worker.postMessage({ id, cancel: true });
  } else {
    clearTimeout(id);
    clearInterval(id);
  }
}

// inWorker reports whether the timers tick in the worker (for tests and diagnostics).
export function inWorker() { return worker !== null; }
