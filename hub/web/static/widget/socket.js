// The chat's WebSocket (/widget/v1/socket): a hello on every connect, nothing else sent
// before the welcome, a ping now and then, and reconnects with a backoff of 0.5 s .. 10 s,
// except when the hub refused the visit itself (4401 identity, 4403 origin, 4404 key).

const NO_RECONNECT = new Set([4401, 4403, 4404]);
const FIRST_WAIT_MS = 500;
const LONGEST_WAIT_MS = 10000;
const PING_EVERY_MS = 25000;

export class ChatSocket {
  /**
   * @param {object} options
   * @param {() => object} options.hello the hello frame, asked for at every connect
   * @param {(frame: object) => void} options.onFrame each frame from the hub (welcome first)
   * @param {(state: string, detail?: string) => void} options.onState "connecting",
   *   "online" (welcomed), "offline" (reconnecting) or "refused" (given up)
   */
  constructor({ hello, onFrame, onState }) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.url = `${scheme}://${location.host}/widget/v1/socket`;
    this.hello = hello;
    this.onFrame = onFrame;
    this.onState = onState;
    this.socket = null;
    this.welcomed = false;
    this.refused = false;
    this.wait = FIRST_WAIT_MS;
    this.retryTimer = null;
    this.pingTimer = null;
    // Back online (the browser says so): try at once instead of waiting out the backoff.
    window.addEventListener("online", () => {
      if (!this.socket && !this.refused) {
        this.wait = FIRST_WAIT_MS;
        this.connect();
      }
    });
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.refused) return;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.retry();
      return;
    }
    this.socket = ws;
    this.welcomed = false;
    ws.addEventListener("open", () => {
      if (this.socket === ws) ws.send(JSON.stringify(this.hello()));
    });
    ws.addEventListener("message", (event) => {
      if (this.socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      if (frame.type === "welcome") {
        this.welcomed = true;
        this.wait = FIRST_WAIT_MS;
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
        this.onState("online");
      }
      this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.welcomed = false;
      clearInterval(this.pingTimer);
      if (NO_RECONNECT.has(event.code)) {
        this.refused = true;
        this.onState("refused", `${event.code} ${event.reason || ""}`.trim());
        return;
      }
      this.onState("offline");
      this.retry();
    });
  }

  retry() {
    clearTimeout(this.retryTimer);
    const wait = this.wait * (0.8 + Math.random() * 0.4);
    this.wait = Math.min(this.wait * 2, LONGEST_WAIT_MS);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  /** Send a frame once welcomed; false when it could not go (it is the caller's to keep). */
  send(frame) {
    const ws = this.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.welcomed) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }
}
