// The status page's feed, in a Web Worker: it holds the WebSocket to the `builds`
// exchange, parses every frame and keeps only each build's newest summary, and hands
// the page one batch every 250 ms. A storm of thousands of changes a second then costs
// the page's own thread four small messages a second.
'use strict';
const FLUSH_MS = 250;
let socket = null;
let generation = 0;
let target = '';      // the subscription URL, without `since`
let lastId = '';      // the position of the last frame: where a reconnect resumes
let retryMs = 500;
let heard = 0;        // frames since the last batch
const pending = new Map(); // build key → newest summary since the last batch

function open() {
  const mine = ++generation;
  const url = new URL(target);
  if (lastId) url.searchParams.set('since', lastId);
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => {
    retryMs = 500;
    postMessage({ type: 'state', state: 'live' });
  };
  ws.onmessage = (ev) => {
    const frame = JSON.parse(ev.data);
    if (frame.missed || frame.truncated) {
      // Changes were lost on the way: the page reads the whole picture again.
      lastId = frame.resume || '';
      pending.clear();
      postMessage({ type: 'gap' });
      return;
    }
    if (frame.id) lastId = frame.id;
    const s = frame.payload;
    if (!s) return;
    heard++;
    const before = pending.get(s.key);
    if (!before || (s.updated_at || '') >= (before.updated_at || '')) pending.set(s.key, s);
  };
  ws.onclose = () => {
    if (mine !== generation) return;
    postMessage({ type: 'state', state: 'reconnecting' });
    setTimeout(() => { if (mine === generation) open(); }, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  };
}

setInterval(() => {
  if (!heard) return;
  postMessage({ type: 'changes', summaries: [...pending.values()], frames: heard });
  pending.clear();
  heard = 0;
}, FLUSH_MS);

// The page says where to subscribe (with its admin token), again after a new token.
onmessage = (ev) => {
  if (ev.data.type !== 'open') return;
  target = ev.data.url;
  lastId = '';
  pending.clear();
  heard = 0;
  if (socket) {
    generation++;
    socket.close();
  }
  open();
};
