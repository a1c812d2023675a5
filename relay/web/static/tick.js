// The link's timer worker (see timers.js): {id, ms, repeat} starts a timer
// that posts id back when due; {id, cancel} stops it.
const timers = new Map();
onmessage = (e) => {
  const { id, ms, repeat, cancel } = e.data;
  const old = timers.get(id);
  if (old) { clearTimeout(old); clearInterval(old); timers.delete(id); }
  if (cancel) return;
  if (repeat) timers.set(id, setInterval(() => postMessage(id), ms));
  else timers.set(id, setTimeout(() => { timers.delete(id); postMessage(id); }, ms));
};
