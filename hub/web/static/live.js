// Live updates over one WebSocket: listeners get each event; on every (re)connect they
// are told to re-fetch, since events may have been missed while the socket was down.

const listeners = new Set();
const statusListeners = new Set();
let socket = null;
let delay = 1000;
let retryTimer = null;
let stopped = false;

export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function onStatus(fn) {
  statusListeners.add(fn);
}

function setStatus(status) {
  document.body.dataset.live = status;
  for (const fn of statusListeners) fn(status);
}

function dispatch(event) {
  for (const fn of listeners) {
    try {
      fn(event);
    } catch (error) {
      console.error("live listener failed", error);
    }
  }
}

export function connect() {
  stopped = false;
  clearTimeout(retryTimer);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/v1/live`);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    delay = 1000;
    setStatus("online");
    dispatch({ event: "live.connected" });
  });
  socket.addEventListener("message", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (event && typeof event.event === "string") dispatch(event);
  });
  socket.addEventListener("close", () => {
    socket = null;
    if (stopped) return;
    setStatus("offline");
    // Backoff 1 s, 2 s, 4 s ... 30 s, with a little jitter so that many tabs spread out.
    const wait = Math.min(delay, 30000) * (0.8 + Math.random() * 0.4);
    delay = Math.min(opened ? 1000 : delay * 2, 30000);
    retryTimer = setTimeout(connect, wait);
  });
}

export function disconnect() {
  stopped = true;
  clearTimeout(retryTimer);
  if (socket) socket.close();
}
