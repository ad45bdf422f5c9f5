// The search box in the header: contacts (by phone, email, @username, name, company) and
// messages (by their words), as the viewer may see them; each hit links to its page.

import { get } from "./api.js";
import { channelLabel, debounce, fill, formatWhen, h, localUrl, t, untrusted } from "./dom.js";

const WAIT_MS = 250; // after the last key

export function searchBox() {
  const input = h("input", {
    type: "search",
    id: "search",
    class: "search-input",
    placeholder: t("search.placeholder"),
    "aria-label": t("search.label"),
    autocomplete: "off",
    maxlength: 200,
    role: "combobox",
    "aria-expanded": "false",
    "aria-controls": "search-results",
  });
  const panel = h("div", { class: "search-results", id: "search-results", role: "listbox", hidden: true });
  let asked = 0; // the latest request: an older answer arriving late is dropped

  const close = () => {
    panel.hidden = true;
    input.setAttribute("aria-expanded", "false");
  };
  const show = (...children) => {
    fill(panel, ...children);
    panel.hidden = false;
    input.setAttribute("aria-expanded", "true");
  };
  const run = async () => {
    const q = input.value.trim();
    const mine = ++asked;
    if (!q) return close();
    try {
      const found = await get(`/api/v1/search?q=${encodeURIComponent(q)}`);
      if (mine !== asked) return;
      show(...results(found));
    } catch (error) {
      if (mine !== asked) return;
      show(h("p", { class: "muted" }, error.status === 400 ? t("search.no_words") : t("error.load")));
    }
  };
  input.addEventListener("input", debounce(run, WAIT_MS));
  input.addEventListener("focus", () => { if (panel.childElementCount) panel.hidden = false; });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
    if (event.key === "Enter") {
      const first = panel.querySelector("a");
      if (first && !panel.hidden) first.click();
    }
  });
  document.addEventListener("click", (event) => {
    if (!panel.contains(event.target) && event.target !== input) close();
  });
  return h("div", { class: "search" }, input, panel);
}

function results(found) {
  if (!found.contacts.length && !found.messages.length) return [h("p", { class: "muted" }, t("search.nothing"))];
  const out = [];
  if (found.contacts.length) {
    out.push(h("h3", {}, t("search.contacts")));
    out.push(h("ul", { class: "plain" }, found.contacts.map(contactHit)));
  }
  if (found.messages.length) {
    out.push(h("h3", {}, t("search.messages")));
    out.push(h("ul", { class: "plain" }, found.messages.map(messageHit)));
  }
  return out;
}

function contactHit(hit) {
  const how = hit.matched === "name" ? "" : `${t(`search.by_${hit.matched}`)}: `;
  return h(
    "li",
    { role: "option" },
    h(
      "a",
      { href: localUrl(hit.link, "/contacts/") || "#", class: "search-hit" },
      h("strong", {}, untrusted(hit.name, t("contact.unnamed"))),
      hit.company ? [" · ", untrusted(hit.company)] : null,
      h("span", { class: "muted search-context" }, how, untrusted(hit.context)),
    ),
  );
}

function messageHit(hit) {
  return h(
    "li",
    { role: "option" },
    h(
      "a",
      { href: localUrl(hit.link, "/inbox?") || "#", class: "search-hit" },
      h("strong", {}, untrusted(hit.contact_name, t("contact.unnamed"))),
      " ",
      h("span", { class: "muted" }, channelLabel(hit.channel), " · ", formatWhen(hit.created_at, { short: true })),
      h("span", { class: "search-context" }, marked(hit.context, hit.highlights)),
    ),
  );
}

// The context as text nodes, each match in a <mark>: never HTML from the data.
function marked(context, highlights) {
  const parts = [];
  let at = 0;
  for (const [offset, length] of highlights) {
    if (offset < at) continue;
    parts.push(context.slice(at, offset));
    parts.push(h("mark", {}, context.slice(offset, offset + length)));
    at = offset + length;
  }
  parts.push(context.slice(at));
  return h("bdi", { dir: "auto", class: "client" }, parts);
}
