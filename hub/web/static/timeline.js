// A contact's history across channels. Client text is only ever a text node; sanitized
// HTML email goes into a sandboxed iframe (no scripts, an opaque origin), never the page.

import { channelLabel, formatSize, formatWhen, h, localUrl, t, untrusted } from "./dom.js";

// The audio types the hub serves inline (hub/api/inbox.py): shown with a player.
const PLAYABLE = new Set(["audio/wav", "audio/x-wav", "audio/wave", "audio/ogg", "audio/mpeg"]);

function attachmentList(message) {
  // The HTML body of a mail travels as an attachment: it is shown (sandboxed) above.
  const attachments = (message.attachments || []).filter(
    (file) => !(message.html_safe && file.name === "message.html" && file.content_type === "text/html"),
  );
  if (!attachments.length) return null;
  return h(
    "ul",
    { class: "plain attachments" },
    attachments.map((file) => {
      // A file the hub does not hold (not fetched, or a recording past its retention).
      const url = file.failure ? null : localUrl(file.url, "/api/v1/");
      const label = [untrusted(file.name, t("message.attachment")), ` (${formatSize(file.size)})`];
      // The file's name in the save dialog is the one the hub sends, made safe there.
      return h(
        "li",
        {},
        url
          ? h("a", { href: url, download: true, rel: "noopener" }, label)
          : h("span", { class: "muted" }, label),
        // A voicemail (or any audio the hub serves inline) plays right here.
        url && PLAYABLE.has(file.content_type)
          ? h("audio", { class: "voicemail", controls: true, preload: "none", src: url })
          : null,
      );
    }),
  );
}

function htmlBody(message) {
  const frame = h("iframe", {
    class: "email-html",
    // An empty sandbox: no scripts, no forms, no popups, no same-origin access.
    sandbox: "",
    referrerpolicy: "no-referrer",
    title: t("message.html_email"),
    loading: "lazy",
  });
  frame.srcdoc = message.html_safe;
  const text = h("div", { class: "text", dir: "auto", hidden: true }, message.text || "");
  const toggle = h(
    "button",
    {
      type: "button",
      class: "link small",
      onclick: () => {
        const showText = text.hidden;
        text.hidden = !showText;
        frame.hidden = showText;
        toggle.textContent = showText ? t("message.show_html") : t("message.show_text");
      },
    },
    t("message.show_text"),
  );
  return [frame, text, toggle];
}

function author(message, contactName) {
  if (message.direction === "in") return untrusted(message.author_name || contactName, t("message.client"));
  return untrusted(message.author_name, message.author_kind === "system" ? t("message.system") : t("message.manager"));
}

export function messageItem(message, { conversationId, contactName } = {}) {
  const kind = message.direction === "note" ? "note" : message.direction === "out" ? "out" : "in";
  const other = conversationId && message.conversation_id !== conversationId;
  const meta = h(
    "div",
    { class: "meta" },
    h("span", { class: "author" }, author(message, contactName)),
    h("span", { class: "tag channel" }, kind === "note" ? t("message.note") : [`${channelLabel(message.channel)} · `, untrusted(message.channel_account)]),
    h("time", { datetime: message.occurred_at }, formatWhen(message.occurred_at)),
    kind === "out" && message.delivery_status
      ? h(
          "span",
          { class: `delivery delivery-${message.delivery_status}`, title: message.delivery_error || null },
          t(`delivery.${message.delivery_status}`),
        )
      : null,
  );
  const body = message.html_safe ? htmlBody(message) : [h("div", { class: "text", dir: "auto" }, message.text || "")];
  return h(
    "li",
    {
      class: `msg msg-${kind}${other ? " msg-other" : ""}`,
      dataset: { id: message.id, conversationId: message.conversation_id },
    },
    meta,
    ...body,
    message.delivery_error ? h("div", { class: "error small", dir: "auto" }, message.delivery_error) : null,
    attachmentList(message),
  );
}

export function renderTimeline(items, options = {}) {
  if (!items.length) return h("p", { class: "muted empty" }, t("timeline.empty"));
  return h(
    "ol",
    { class: "plain timeline", id: "timeline", "aria-live": "polite" },
    items.map((m) => messageItem(m, options)),
  );
}
