// omnihub site chat: the frame. It runs on the hub's origin under a strict CSP, inside the
// loader's <iframe>; it talks to the hub over the WebSocket /widget/v1/socket and to the
// loader by postMessage. Every text from the visitor or a manager is only ever a text node.
//
// What the visitor sends is shown at once as "sending" and kept (in memory and in this
// frame's sessionStorage; where the browser blocks a third party's storage, in the host
// page's, through the loader) until the hub acknowledges it; after a reconnect every
// unacked message is sent again with the same client id, which the hub stores only once.
//
// Modules: socket.js (the connection), prechat.js (the pre-chat form), upload.js (files),
// dom.js (DOM and format helpers), texts.js (the RU and EN texts).

import { formatSize, formatTime, h, icon, isColor, loadJson, newId, saveJson, session, str } from "./dom.js";
import { drawPrechat, prechatFields, readPrechat } from "./prechat.js";
import { ChatSocket } from "./socket.js";
import { TEXTS, pickLanguage } from "./texts.js";
import { fileProblem, uploadFile } from "./upload.js";

const body = document.body;
const KEY = body.dataset.key || "";
const HOST = body.dataset.host || "";
const root = document.getElementById("chat") || body.appendChild(document.createElement("main"));
const EMBEDDED = window.parent !== window;
const QUEUE_KEY = `omnihub:${KEY}:queue`;
const CONTACT_KEY = `omnihub:${KEY}:contact`;
const TYPING_EVERY_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MS = 6000;

let lang = pickLanguage();

function t(name, vars = {}) {
  const text = TEXTS[lang][name] ?? TEXTS.en[name] ?? name;
  return text.replace(/\{(\w+)\}/g, (_, v) => (v in vars ? String(vars[v]) : ""));
}

// ----- state

const state = {
  init: null, // what the loader told us
  token: null,
  widget: null,
  visitor: { name: "", email: "", phone: "", verified: false },
  panelOpen: !EMBEDDED,
  readUpTo: 0, // the last visitor message a manager has read
  seenUpTo: 0, // the last manager message the visitor has seen (sent as `read`)
  unreadSent: -1,
  refused: false,
  // Messages the hub has stored, by server id; pending ones by client id.
  stored: new Map(),
  pending: [],
  // The pre-chat answers given in this tab: they go with every message (the hub keeps the
  // latest), so that a way back out of hours is never missing.
  contact: cleanContact(loadJson(CONTACT_KEY, null)) || null,
  contactNeeded: false, // the hub refused a message for a missing pre-chat field
  formErrors: {},
};
const elements = new Map(); // message key -> <li>

function persistQueue() {
  const queued = state.pending
    .filter((m) => m.status === "sending")
    .map(({ id, text, files, fileInfo, contact, at }) => ({ id, text, files, fileInfo, contact, at }));
  if (session) saveJson(QUEUE_KEY, queued.length ? queued : null);
  // This frame's storage is blocked (a third party): the loader keeps it in the host's.
  else toParent({ type: "queue", items: queued });
}

function cleanContact(raw) {
  if (!raw || typeof raw !== "object") return undefined;
  const contact = {};
  for (const field of ["name", "email", "phone"]) {
    if (typeof raw[field] === "string" && raw[field]) contact[field] = raw[field];
  }
  return Object.keys(contact).length ? contact : undefined;
}

/** Unacknowledged messages from a stored queue: shown as sending, sent after the welcome. */
function restoreQueue(items) {
  if (!Array.isArray(items)) return;
  for (const raw of items) {
    if (!raw || typeof raw !== "object" || typeof raw.id !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(raw.id)) continue;
    if (state.pending.some((m) => m.id === raw.id)) continue;
    const item = {
      id: raw.id,
      text: str(raw.text),
      files: Array.isArray(raw.files) ? raw.files.filter((f) => typeof f === "string") : [],
      fileInfo: Array.isArray(raw.fileInfo) ? raw.fileInfo.filter((f) => f && typeof f === "object") : [],
      contact: cleanContact(raw.contact),
      status: "sending",
      at: str(raw.at) || new Date().toISOString(),
    };
    state.pending.push(item);
    pendingElement(item);
  }
}

// ----- the parent (the loader)

function toParent(message) {
  if (!EMBEDDED || !HOST) return;
  window.parent.postMessage({ omnihub: 1, ...message }, HOST);
}

window.addEventListener("message", (event) => {
  if (!EMBEDDED || event.source !== window.parent || event.origin !== HOST) return;
  const data = event.data;
  if (!data || typeof data !== "object" || data.omnihub !== 1) return;
  if (data.type === "init" && !state.init) {
    state.init = {
      token: typeof data.token === "string" && data.token ? data.token : null,
      page: data.page && typeof data.page === "object" ? data.page : { url: "", referrer: "", origin: HOST },
      first_visit: data.first_visit && typeof data.first_visit === "object" ? data.first_visit : null,
      user: data.user && typeof data.user === "object" ? data.user : null,
      language: data.language === "ru" || data.language === "en" ? data.language : null,
    };
    state.token = state.init.token;
    if (!session) restoreQueue(data.queue);
    lang = pickLanguage(state.init.language);
    renderAll();
    connectWhenWanted();
  } else if (data.type === "panel") {
    state.panelOpen = Boolean(data.open);
    body.dataset.panel = state.panelOpen ? "open" : "closed";
    if (state.panelOpen) {
      connectWhenWanted();
      scrollToEnd(true);
      maybeRead();
    }
  }
});

// ----- the page

const ui = {
  title: h("h1", { id: "chat-title" }),
  subtitle: h("p", { class: "subtitle", dataset: { role: "hours" } }),
  status: h("p", { class: "connection", role: "status", dataset: { role: "status" } }),
  offline: h("p", { class: "offline", dataset: { role: "offline" }, hidden: true }),
  greeting: h("p", { class: "greeting", dir: "auto", dataset: { role: "greeting" } }),
  list: h("ol", { class: "messages", role: "log", "aria-live": "polite", "aria-relevant": "additions" }),
  typing: h("p", { class: "typing", dataset: { role: "typing" }, hidden: true, "aria-live": "polite" }),
  form: h("form", { class: "prechat", dataset: { role: "prechat" }, hidden: true, novalidate: true }),
  composer: h("form", { class: "composer", hidden: true }),
  closeButton: h("button", { type: "button", class: "close", dataset: { role: "close" } }),
};
ui.scroller = h("div", { class: "scroller" }, ui.offline, ui.greeting, ui.list, ui.typing, ui.form);

const composerText = h("textarea", {
  id: "composer-text",
  rows: 1,
  dataset: { role: "composer" },
});
const fileInput = h("input", { type: "file", id: "composer-file", class: "file-input", tabindex: "-1" });
const attachButton = h("button", { type: "button", class: "attach", dataset: { role: "attach" } }, icon("attach"));
const sendButton = h("button", { type: "submit", class: "send", dataset: { role: "send" } }, icon("send"));
const composerError = h("p", { class: "error", role: "alert", dataset: { role: "composer-error" } });
const composerLabel = h("label", { for: "composer-text", class: "visually-hidden" });
ui.composer.append(composerLabel, composerError, h("div", { class: "row" }, attachButton, fileInput, composerText, sendButton));

ui.closeButton.append(icon("close"));

root.append(
  h(
    "header",
    { class: "head" },
    h("div", { class: "titles" }, ui.title, ui.subtitle),
    EMBEDDED ? ui.closeButton : null,
  ),
  ui.status,
  ui.scroller,
  ui.composer,
);
root.setAttribute("aria-labelledby", "chat-title");

ui.closeButton.addEventListener("click", () => toParent({ type: "close" }));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && EMBEDDED) toParent({ type: "close" });
});

function renderAll() {
  const widget = state.widget || {};
  document.documentElement.lang = lang;
  document.title = str(widget.title) || t("title");
  if (isColor(widget.color)) document.documentElement.style.setProperty("--accent", widget.color); // CSSOM
  ui.title.textContent = str(widget.title) || t("title");
  ui.subtitle.textContent = state.widget
    ? [widget.open === false ? "" : t("online"), str(widget.hours)].filter(Boolean).join(" · ")
    : "";
  ui.closeButton.setAttribute("aria-label", t("close"));
  ui.closeButton.title = t("close");
  ui.list.setAttribute("aria-label", t("messages"));
  ui.offline.textContent = t("offline");
  ui.offline.hidden = !state.widget || widget.open !== false;
  ui.greeting.textContent = str(widget.greeting) || (state.widget ? t("empty") : "");
  ui.greeting.hidden = !state.widget;
  composerLabel.textContent = t("composer");
  composerText.placeholder = t("placeholder");
  attachButton.setAttribute("aria-label", t("attach"));
  attachButton.title = t("attach");
  sendButton.setAttribute("aria-label", t("send"));
  sendButton.title = t("send");
  ui.typing.textContent = t("typing");
  if (widget.max_message_chars) composerText.maxLength = Number(widget.max_message_chars);
  if (Array.isArray(widget.file_types) && widget.file_types.length) fileInput.accept = widget.file_types.join(",");
  attachButton.hidden = Array.isArray(widget.file_types) && widget.file_types.length === 0;
  renderConnection();
  renderForm();
  for (const el of elements.values()) refreshMessage(el);
}

// ----- the connection

let connectionState = "idle";
const chat = new ChatSocket({
  hello: () => {
    const init = state.init || { page: { url: "", referrer: "", origin: HOST }, first_visit: null, user: null, language: null };
    return {
      type: "hello",
      key: KEY,
      token: state.token,
      page: init.page,
      first_visit: init.first_visit,
      user: init.user,
      // the greeting's language: the tag's or the widget's, else the browser's
      language: init.language || pickLanguage(),
    };
  },
  onFrame: handle,
  onState: (value, detail) => {
    connectionState = value;
    if (value !== "online") typingSent = false;
    if (value === "refused") {
      state.refused = true;
      console.error(`omnihub widget: the hub refused the chat (${detail})`);
      renderForm();
    }
    renderConnection();
  },
});
const send = (frame) => chat.send(frame);
function connect() {
  connectionState = "connecting";
  renderConnection();
  chat.connect();
}

// A visitor who never chatted gets a session (and a socket) when they open the panel: page
// views alone cost the hub nothing. One with a session (a token, a site's user) or with
// messages still to send connects at once, to hear the replies (the launcher's badge).
let connectAsked = false;
function connectWhenWanted() {
  if (connectAsked || !state.init) return;
  if (state.token || state.init.user || state.pending.length || state.panelOpen) {
    connectAsked = true;
    connect();
  }
}

function renderConnection() {
  body.dataset.socket = connectionState;
  const text =
    connectionState === "online" || connectionState === "idle"
      ? ""
      : connectionState === "refused"
        ? t("refused")
        : state.widget
          ? t("reconnecting")
          : t("connecting");
  ui.status.textContent = text;
  ui.status.hidden = !text;
}

function handle(frame) {
  switch (frame.type) {
    case "welcome":
      return onWelcome(frame);
    case "ack":
      return onAck(frame);
    case "message":
      if (frame.message && typeof frame.message === "object") upsertStored(frame.message, { live: true });
      return afterChange();
    case "typing":
      return showTyping(Boolean(frame.on));
    case "read":
      state.readUpTo = Math.max(state.readUpTo, Number(frame.up_to) || 0);
      for (const el of elements.values()) refreshMessage(el);
      return undefined;
    case "error":
      return onError(frame);
    default:
      return undefined; // pong, or something newer than this frame
  }
}

function onWelcome(frame) {
  if (typeof frame.token === "string" && frame.token && frame.token !== state.token) {
    state.token = frame.token;
    toParent({ type: "token", token: frame.token });
  }
  state.widget = frame.widget && typeof frame.widget === "object" ? frame.widget : {};
  const widgetLanguage = state.widget.language === "auto" ? null : state.widget.language;
  lang = pickLanguage(state.init && state.init.language, widgetLanguage);
  const visitor = frame.visitor && typeof frame.visitor === "object" ? frame.visitor : {};
  state.visitor = {
    name: str(visitor.name),
    email: str(visitor.email),
    phone: str(visitor.phone),
    verified: Boolean(visitor.verified),
  };
  state.readUpTo = Math.max(state.readUpTo, Number(frame.read_up_to) || 0);
  const messages = Array.isArray(frame.messages) ? frame.messages : [];
  for (const message of messages) {
    if (message && typeof message === "object") upsertStored(message, { live: false });
  }
  // What the visitor has seen: manager messages the hub already has as read.
  for (const message of state.stored.values()) {
    if (message.from !== "visitor" && message.status === "read") state.seenUpTo = Math.max(state.seenUpTo, message.id);
  }
  renderAll();
  // Everything not yet acknowledged goes again, with the same client ids, in order.
  for (const message of state.pending) {
    if (message.status === "sending") transmit(message);
  }
  afterChange({ scroll: true });
}

function onAck(frame) {
  const clientId = str(frame.id);
  const index = state.pending.findIndex((m) => m.id === clientId);
  if (index >= 0) state.pending.splice(index, 1);
  persistQueue();
  if (frame.message && typeof frame.message === "object") upsertStored(frame.message, { live: false });
  else dropPending(clientId);
  afterChange();
}

// The hub's reasons in the visitor's language, where we know them (else the hub's text).
function errorText(code, field, fallback) {
  if (code === "required" && field === "email" && state.widget && state.widget.open === false) return t("need_contact");
  if (code === "required" && ["name", "email", "phone"].includes(field)) return t("need_field");
  if (code === "invalid" && field === "email") return t("bad_email");
  if (code === "invalid" && field === "phone") return t("bad_phone");
  if (code === "rate_limited") return t("rate_limited");
  return fallback || code;
}

function onError(frame) {
  const clientId = str(frame.id);
  const raw = str(frame.field);
  const field = raw.startsWith("contact.") ? raw.slice("contact.".length) : raw;
  const message = errorText(str(frame.code), field, str(frame.message));
  const item = clientId ? state.pending.find((m) => m.id === clientId) : null;
  if (item) {
    // Not stored: it stays on screen, marked, with a way to send it again.
    item.status = ["name", "email", "phone"].includes(field) ? "held" : "failed";
    item.error = message;
    persistQueue();
    const el = elements.get(`c:${item.id}`);
    if (el) refreshMessage(el);
  }
  if (["name", "email", "phone"].includes(field)) {
    state.formErrors = { [field]: message };
    state.contactNeeded = true;
    state.contact = null;
    renderForm();
  } else if (!item) {
    composerError.textContent = message;
  }
}

// ----- messages

function messageKey(message) {
  return message.client_id ? `c:${message.client_id}` : `s:${message.id}`;
}

function upsertStored(raw, { live }) {
  const id = Number(raw.id);
  if (!Number.isFinite(id)) return;
  const message = {
    id,
    client_id: str(raw.client_id) || null,
    from: raw.from === "visitor" || raw.from === "manager" ? raw.from : "system",
    author: str(raw.author),
    text: str(raw.text),
    files: Array.isArray(raw.files) ? raw.files.filter((f) => f && typeof f === "object") : [],
    at: str(raw.at),
    status: str(raw.status),
  };
  const known = state.stored.get(id);
  state.stored.set(id, message);
  if (message.client_id) {
    // Ours (acked here, or sent from another tab): no longer pending.
    const index = state.pending.findIndex((m) => m.id === message.client_id);
    if (index >= 0) {
      state.pending.splice(index, 1);
      persistQueue();
    }
  }
  let el = known ? elements.get(known.key) : null;
  if (!el && message.client_id) el = elements.get(`c:${message.client_id}`);
  if (!el) el = elements.get(`s:${id}`);
  if (el) {
    el._message = message;
    el.dataset.id = String(id);
    refreshMessage(el);
    message.key = el.dataset.key;
    return;
  }
  message.key = messageKey(message);
  el = messageElement(message);
  // Stored messages go before the ones still on their way, in id order.
  let before = null;
  for (const other of ui.list.children) {
    const otherId = Number(other.dataset.id);
    if (other.dataset.pending === "true" || (otherId && otherId > id)) {
      before = other;
      break;
    }
  }
  ui.list.insertBefore(el, before);
  if (live && message.from !== "visitor") showTyping(false);
}

function dropPending(clientId) {
  const el = elements.get(`c:${clientId}`);
  if (el && el.dataset.pending === "true") {
    el.remove();
    elements.delete(`c:${clientId}`);
  }
}

function pendingElement(item) {
  const key = `c:${item.id}`;
  let el = elements.get(key);
  if (!el) {
    el = messageElement({ key, pending: item });
    ui.list.append(el);
  } else {
    el._pending = item;
    refreshMessage(el);
  }
  return el;
}

function messageElement(message) {
  const el = h("li", { class: "message", dataset: { role: "message", key: message.key } });
  el._message = message.pending ? null : message;
  el._pending = message.pending || null;
  elements.set(message.key, el);
  refreshMessage(el);
  return el;
}

/** (Re)draw one message from what is known of it: the stored version wins over the pending
 * one. Its body is rebuilt only when it changed, so that a status change (sent, read) is not
 * announced again as a new message by the live region. */
function refreshMessage(el) {
  const stored = el._message;
  const pending = stored ? null : el._pending;
  const from = stored ? stored.from : "visitor";
  let status;
  if (pending) status = pending.status === "sending" || pending.status === "uploading" ? "sending" : "failed";
  else if (from === "visitor") status = stored.id <= state.readUpTo ? "read" : stored.status === "delivered" ? "delivered" : "sent";
  else status = stored.status || "sent";
  el.dataset.from = from;
  el.dataset.status = status;
  el.dataset.pending = pending ? "true" : "false";
  if (stored) el.dataset.id = String(stored.id);
  el.className = `message from-${from} status-${status}`;
  const text = stored ? stored.text : pending.text;
  const files = stored ? stored.files : pending.fileInfo || [];
  const at = stored ? stored.at : pending.at;
  const author =
    from === "visitor"
      ? t("you")
      : from === "manager"
        ? stored.author || t("manager")
        : stored.author || str((state.widget || {}).title) || t("system");
  const signature = JSON.stringify([lang, from, author, text, at, files.map((f) => [f.id, f.name, f.size])]);
  if (el._signature !== signature) {
    el._signature = signature;
    el._state = from === "visitor" ? h("span", { class: "state", dataset: { role: "state" } }) : null;
    el._problem = h("div", { class: "problem" });
    el.replaceChildren(
      ...[
        from !== "visitor"
          ? h("div", { class: "author", dir: "auto" }, author)
          : h("span", { class: "visually-hidden" }, `${author}:`),
        text ? h("div", { class: "text", dir: "auto" }, text) : null,
        files.length ? h("ul", { class: "files" }, files.map((f) => fileItem(f))) : null,
        h("div", { class: "meta" }, h("time", { datetime: at }, formatTime(at, lang)), el._state),
        el._problem,
      ].filter(Boolean),
    );
  }
  if (el._state) el._state.textContent = t(status);
  el._problem.replaceChildren(
    ...(pending && pending.error
      ? [
          h(
            "div",
            { class: "error", role: "alert", dataset: { role: "error" } },
            pending.error,
            pending.status === "failed" && pending.retryable !== false
              ? h("button", { type: "button", class: "link", onclick: () => retry(pending) }, t("retry"))
              : null,
          ),
        ]
      : []),
  );
}

function fileItem(file) {
  const name = str(file.name) || "file";
  const label = [h("span", { class: "file-name", dir: "auto" }, name), ` (${formatSize(file.size)})`];
  if (file.id === undefined || file.id === null) return h("li", {}, label);
  return h(
    "li",
    {},
    h(
      "button",
      {
        type: "button",
        class: "link file",
        title: t("download", { name }),
        onclick: () => download(file, name),
      },
      label,
    ),
  );
}

async function download(file, name) {
  // Files need the session token: fetch, then save the bytes (never shown inline).
  try {
    const path = String(file.id).split("/").map(encodeURIComponent).join("/");
    const response = await fetch(`/widget/v1/files/${path}?key=${encodeURIComponent(KEY)}`, {
      headers: { Authorization: `Bearer ${state.token}` },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    const url = URL.createObjectURL(new Blob([blob], { type: "application/octet-stream" }));
    const link = h("a", { href: url, download: name, hidden: true });
    body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    composerError.textContent = t("upload_failed", { message: error.message });
  }
}

function retry(item) {
  item.status = "sending";
  item.error = "";
  if (state.contact) item.contact = state.contact;
  persistQueue();
  pendingElement(item);
  transmit(item);
}

function transmit(item) {
  const frame = { type: "message", id: item.id, text: item.text || "" };
  if (item.files && item.files.length) frame.files = item.files;
  if (item.contact) frame.contact = item.contact;
  send(frame);
}

function queueMessage(text, files = [], fileInfo = []) {
  const item = {
    id: newId(),
    text,
    files,
    fileInfo,
    status: "sending",
    at: new Date().toISOString(),
  };
  const contact = contactToSend();
  if (contact) item.contact = contact;
  state.pending.push(item);
  persistQueue();
  pendingElement(item);
  transmit(item);
  afterChange({ scroll: true });
  return item;
}

function contactToSend() {
  if (!state.contact) return null;
  const contact = {};
  for (const field of ["name", "email", "phone"]) {
    if (state.contact[field]) contact[field] = state.contact[field];
  }
  return Object.keys(contact).length ? contact : null;
}

function afterChange({ scroll = false } = {}) {
  renderForm();
  scrollToEnd(scroll);
  maybeRead();
  reportUnread();
}

function scrollToEnd(force) {
  const scroller = ui.scroller;
  const nearEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  if (force || nearEnd) scroller.scrollTop = scroller.scrollHeight;
}

function lastManagerId() {
  let last = 0;
  for (const message of state.stored.values()) {
    if (message.from !== "visitor" && message.id > last) last = message.id;
  }
  return last;
}

function maybeRead() {
  if (!chat.welcomed || !state.panelOpen || document.visibilityState !== "visible") return;
  if (EMBEDDED && !document.hasFocus()) return;
  const last = lastManagerId();
  if (last > state.seenUpTo && send({ type: "read", up_to: last })) {
    state.seenUpTo = last;
    reportUnread();
  }
}
window.addEventListener("focus", maybeRead);
document.addEventListener("visibilitychange", maybeRead);
document.addEventListener("pointerdown", () => setTimeout(maybeRead, 0));

function reportUnread() {
  let count = 0;
  for (const message of state.stored.values()) {
    if (message.from !== "visitor" && message.id > state.seenUpTo && message.status !== "read") count += 1;
  }
  body.dataset.unread = String(count);
  if (count !== state.unreadSent) {
    state.unreadSent = count;
    toParent({ type: "unread", count });
  }
}

// ----- "the manager is typing"

let typingTimer = null;
function showTyping(on) {
  clearTimeout(typingTimer);
  ui.typing.hidden = !on;
  if (on) {
    typingTimer = setTimeout(() => {
      ui.typing.hidden = true;
    }, TYPING_SHOWN_MS);
    scrollToEnd(false);
  }
}

// ... and the visitor's: at most every 3 s while typing, "stopped" after 4 s idle.
let typingSent = false;
let typingSentAt = 0;
let idleTimer = null;
function typed() {
  const now = Date.now();
  if (!typingSent || now - typingSentAt >= TYPING_EVERY_MS) {
    if (send({ type: "typing", on: true })) {
      typingSent = true;
      typingSentAt = now;
    }
  }
  clearTimeout(idleTimer);
  idleTimer = setTimeout(stoppedTyping, TYPING_IDLE_MS);
}

function stoppedTyping() {
  clearTimeout(idleTimer);
  if (typingSent) send({ type: "typing", on: false });
  typingSent = false;
}

// ----- the pre-chat form

function hasMessages() {
  return state.stored.size > 0 || state.pending.length > 0;
}

/** What the hub already has of the visitor's contacts (theirs, or typed in this tab). */
function knownContact() {
  return { ...state.visitor, ...(state.contact || {}) };
}

function formWanted() {
  if (!state.widget || state.refused) return false;
  if (state.contactNeeded) return true; // the hub refused a message for a missing field
  const { fields, offline } = prechatFields(state.widget);
  if (!fields.length || state.contact) return false; // nothing to ask, or answered here
  const known = knownContact();
  if (offline && !known.email && !known.phone) return true; // out of hours: a way back
  // A site's verified user is not asked again for what the site told us.
  if (state.visitor.verified && fields.every((f) => f.rule !== "required" || known[f.name])) return false;
  return !hasMessages(); // before the first message
}

let formDrawnFor = "";
function renderForm() {
  const wanted = formWanted();
  ui.form.hidden = !wanted;
  ui.composer.hidden = wanted || !state.widget || state.refused;
  body.dataset.prechat = wanted ? "shown" : "hidden";
  if (!wanted) {
    formDrawnFor = "";
    return;
  }
  const { fields, offline } = prechatFields(state.widget);
  const signature = JSON.stringify([lang, fields, offline, state.formErrors]);
  if (signature === formDrawnFor) return;
  formDrawnFor = signature;
  drawPrechat(ui.form, { t, fields, offline, errors: state.formErrors, known: knownContact() });
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const { fields, offline } = prechatFields(state.widget);
  const { values, errors } = readPrechat(ui.form, { t, fields, offline, known: state.visitor });
  state.formErrors = errors;
  if (Object.keys(errors).length) {
    renderForm();
    const first = ui.form.querySelector("[aria-invalid=true]") || ui.form.querySelector("input");
    if (first) first.focus();
    return;
  }
  state.contact = values;
  state.contactNeeded = false;
  saveJson(CONTACT_KEY, values);
  // Messages the hub held back for a missing field go again, with the answers.
  for (const item of state.pending) {
    if (item.status === "held") {
      item.status = "sending";
      item.error = "";
      item.contact = contactToSend();
      pendingElement(item);
      transmit(item);
    }
  }
  persistQueue();
  renderForm();
  composerText.focus();
});

// ----- the composer

composerText.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
composerText.addEventListener("input", () => {
  composerError.textContent = "";
  if (composerText.value.trim()) typed();
  autosize();
});

function autosize() {
  composerText.style.height = "auto"; // CSSOM, allowed by the CSP
  composerText.style.height = `${Math.min(composerText.scrollHeight, 120)}px`;
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = composerText.value.trim();
  if (!text) return;
  composerText.value = "";
  autosize();
  stoppedTyping();
  queueMessage(text);
  composerText.focus();
});

attachButton.addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  const files = Array.from(fileInput.files || []);
  fileInput.value = "";
  for (const file of files) upload(file);
});

async function upload(file) {
  const widget = state.widget || {};
  const problem = fileProblem(file, widget, t);
  composerError.textContent = problem || "";
  if (problem) return;
  // Shown at once while the bytes travel; queued with the upload's id when they arrive.
  const item = {
    id: newId(),
    text: composerText.value.trim(),
    files: [],
    fileInfo: [{ name: file.name, size: file.size, content_type: file.type }],
    status: "uploading",
    at: new Date().toISOString(),
  };
  composerText.value = "";
  state.pending.push(item);
  pendingElement(item);
  scrollToEnd(true);
  try {
    const stored = await uploadFile(file, { key: KEY, token: state.token, widget, t });
    item.files = [stored.id];
    item.fileInfo = [stored];
    item.status = "sending";
    const contact = contactToSend();
    if (contact) item.contact = contact;
    persistQueue();
    pendingElement(item);
    transmit(item);
  } catch (error) {
    // Nothing to send again: the bytes never arrived. The visitor may attach it again.
    item.status = "failed";
    item.retryable = false;
    item.error = error.message;
    pendingElement(item);
  }
}

// ----- start

// Restore what was queued before a reload of this frame: shown as "sending" until acked.
restoreQueue(loadJson(QUEUE_KEY, []));
renderAll();
body.dataset.panel = state.panelOpen ? "open" : "closed";
if (EMBEDDED) {
  toParent({ type: "ready" });
} else {
  connect(); // opened on its own (a preview of the frame): no loader to wait for
}
