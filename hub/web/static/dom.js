// Small DOM helpers. Every piece of data reaches the page through textContent or a
// property: nothing here ever assigns HTML.

const I18N = JSON.parse(document.getElementById("i18n").textContent);
export const LOCALE = document.documentElement.lang || "en";

/** A UI string; `{name}` placeholders are filled from `vars`. */
export function t(key, vars = {}) {
  const text = Object.prototype.hasOwnProperty.call(I18N, key) ? I18N[key] : key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : ""));
}

/**
 * h("button", {class: "x", onclick: fn, "aria-label": "..."}, "text", child)
 * Strings become text nodes; null/undefined/false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Bidi controls a client may hide in a name: embeddings and overrides (U+202A-U+202E) and
// isolates (U+2066-U+2069) reorder text; the marks (U+200E, U+200F, U+061C) are invisible.
const BIDI_REORDERING = /[\u202A-\u202E\u2066-\u2069]/g;
const BIDI_MARKS = /[\u200E\u200F\u061C]/g;
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g;
const spell = (char) => `\u27E8U+${char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}\u27E9`;
const shown = (text) => text.replace(BIDI_REORDERING, spell).replace(BIDI_MARKS, "");

/**
 * Client-controlled short text (a contact's, company's, manager's or file's name, a title, a
 * channel account, an identity) as `<bdi dir="auto">`: isolated, so that it cannot reorder
 * the text around it; a reordering control inside shows as "⟨U+202E⟩" and an invisible mark
 * is dropped; the tooltip holds the real text with every control spelled as its code point.
 * Empty text gives `fallback` (UI text, trusted) as it is.
 */
export function untrusted(text, fallback = "") {
  if (text === null || text === undefined || text === "") return fallback;
  const real = String(text);
  return h("bdi", { dir: "auto", class: "client", title: real.replace(BIDI_CONTROLS, spell) }, shown(real));
}

/** The same for places that take a plain string (an option, an aria-label, the tab's
 * title): the controls shown as by `untrusted`, the whole wrapped in FSI ... PDI. */
export function untrustedString(text, fallback = "") {
  if (text === null || text === undefined || text === "") return fallback;
  return `\u2068${shown(String(text))}\u2069`;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const dateTime = new Intl.DateTimeFormat(LOCALE, { dateStyle: "short", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(LOCALE, { timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium" });

export function formatWhen(iso, { short = false } = {}) {
  if (!iso) return "";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  if (short) {
    const now = new Date();
    return when.toDateString() === now.toDateString() ? timeOnly.format(when) : dateOnly.format(when);
  }
  return dateTime.format(when);
}

export function formatMoney(amount, currency) {
  if (amount === null || amount === undefined || amount === "") return "";
  const value = Number(amount);
  if (!Number.isFinite(value)) return String(amount);
  try {
    return new Intl.NumberFormat(LOCALE, {
      style: "currency",
      currency: currency || "RUB",
      maximumFractionDigits: 0,
    }).format(value);
  } catch {
    return `${value} ${currency || ""}`.trim();
  }
}

export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A stage's or funnel's name in the page's language. */
export function localName(row) {
  if (!row) return "";
  return (LOCALE === "ru" ? row.name_ru : row.name_en) || row.name_en || row.name_ru || row.code || "";
}

export function channelLabel(channel) {
  return t(`channel.${channel}`) === `channel.${channel}` ? channel : t(`channel.${channel}`);
}

/** Run `fn` at most once per animation-free tick burst: collapses bursts of live events. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Only paths on this site: never a javascript: or foreign URL from data. */
export function localUrl(url, prefix = "/") {
  return typeof url === "string" && url.startsWith(prefix) && !url.startsWith("//") && !url.includes("\\")
    ? url
    : null;
}

// A row of tab buttons, one per view; `badges` (optional) maps a view to a count.
export function tabButtons(views, current, { idPrefix, labelPrefix, onpick, badges = null }) {
  return views.map((view) =>
    h(
      "button",
      {
        type: "button",
        role: "tab",
        class: "tab",
        id: `${idPrefix}-${view}`,
        "aria-selected": String(current === view),
        onclick: () => onpick(view),
      },
      t(`${labelPrefix}.${view}`),
      badges && badges[view] ? h("span", { class: "badge", "aria-label": t("inbox.unread") }, badges[view]) : null,
    ),
  );
}
