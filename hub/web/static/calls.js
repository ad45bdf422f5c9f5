// /calls: every call the manager may see, newest first, with filters; each row links to
// the contact, and a voicemail plays in its row. Text reaches the page as text only.

import { get, query } from "./api.js";
import { debounce, fill, formatWhen, h, localUrl, t, untrusted, untrustedString } from "./dom.js";
import { onEvent } from "./live.js";

const DIRECTIONS = ["in", "out"];
const DISPOSITIONS = ["answered", "missed", "voicemail", "busy", "rejected", "failed"];
const PAGE = 50;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** 75 -> "1:15" */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.round(Number(seconds) || 0);
  const minutes = Math.floor(total / 60);
  const rest = String(total % 60).padStart(2, "0");
  return minutes >= 60 ? `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

export async function start({ root }) {
  const params = new URLSearchParams(location.search);
  const pick = (name, allowed) => (allowed.includes(params.get(name)) ? params.get(name) : "");
  const state = {
    direction: pick("direction", DIRECTIONS),
    disposition: pick("disposition", DISPOSITIONS),
    manager_id: /^\d{1,18}$/.test(params.get("manager_id") || "") ? params.get("manager_id") : "",
    line: (params.get("line") || "").slice(0, 120),
    from: DATE.test(params.get("from") || "") ? params.get("from") : "",
    to: DATE.test(params.get("to") || "") ? params.get("to") : "",
  };
  const managers = await get("/api/v1/managers")
    .then((d) => d.items || [])
    .catch(() => []);

  const select = (id, key, label, options) =>
    h(
      "label",
      { class: "field" },
      h("span", {}, label),
      h(
        "select",
        {
          id,
          onchange: (event) => {
            state[key] = event.target.value;
            load();
          },
        },
        options.map(([value, text]) => h("option", { value, selected: String(state[key]) === String(value) }, text)),
      ),
    );
  const dateInput = (id, key, label) =>
    h(
      "label",
      { class: "field" },
      h("span", {}, label),
      h("input", {
        type: "date",
        id,
        value: state[key],
        onchange: (event) => {
          state[key] = event.target.value;
          load();
        },
      }),
    );
  const reloadSoon = debounce(() => load(), 300);
  const lineInput = h(
    "label",
    { class: "field" },
    h("span", {}, t("calls.line")),
    h("input", {
      type: "search",
      id: "calls-line",
      value: state.line,
      maxlength: 120,
      placeholder: t("calls.any_line"),
      oninput: (event) => {
        state.line = event.target.value.trim();
        reloadSoon();
      },
    }),
  );
  const error = h("p", { class: "error small", role: "alert", id: "calls-error" });
  const body = h("tbody", {});
  const more = h("button", { type: "button", id: "calls-more", class: "ghost", hidden: true }, t("calls.more"));
  const columns = ["when", "direction", "contact", "line", "manager", "outcome", "ring", "talk", "voicemail"];
  const tableEl = h(
    "table",
    { class: "report-table calls-table", id: "calls" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, t(`calls.col.${c}`))))),
    body,
  );
  fill(
    root,
    h(
      "div",
      { class: "calls-page" },
      h(
        "div",
        { class: "toolbar report-filters" },
        h("h1", {}, t("nav.calls")),
        dateInput("calls-from", "from", t("reports.from")),
        dateInput("calls-to", "to", t("reports.to")),
        select("calls-direction", "direction", t("calls.direction"), [
          ["", t("reports.all")],
          ...DIRECTIONS.map((d) => [d, t(`calls.direction.${d}`)]),
        ]),
        select("calls-disposition", "disposition", t("calls.outcome"), [
          ["", t("reports.all")],
          ...DISPOSITIONS.map((d) => [d, t(`calls.disposition.${d}`)]),
        ]),
        select("calls-manager", "manager_id", t("reports.manager"), [
          ["", t("reports.all")],
          ...managers.map((m) => [String(m.id), untrustedString(m.name)]),
        ]),
        lineInput,
        error,
      ),
      h("div", { class: "table-box" }, tableEl),
      more,
    ),
  );
  root.classList.add("one-pane");

  function row(call) {
    const url = localUrl(call.voicemail_url, "/api/v1/");
    const missed = call.direction === "in" && call.disposition !== "answered";
    const cell = (name, ...content) => h("td", { dataset: { col: name }, class: ["ring", "talk"].includes(name) ? "num" : null }, ...content);
    return h(
      "tr",
      {
        class: `call${missed ? " call-missed" : ""}`,
        dataset: { id: call.id, direction: call.direction, disposition: call.disposition },
      },
      cell("when", h("time", { datetime: call.started_at }, formatWhen(call.started_at))),
      cell("direction", t(`calls.direction.${call.direction}`)),
      cell(
        "contact",
        h("a", { href: `/contacts/${Number(call.contact_id)}`, class: "contact-link" }, untrusted(call.contact_name, t("contact.unnamed"))),
        h("div", { class: "muted small mono" }, untrusted(call.direction === "in" ? call.caller : call.callee)),
      ),
      cell("line", untrusted(call.line)),
      cell("manager", untrusted(call.manager_name, "—")),
      cell("outcome", h("span", { class: `status status-${missed ? "overdue" : "open"}` }, t(`calls.disposition.${call.disposition}`))),
      cell("ring", duration(call.ring_seconds)),
      cell("talk", duration(call.duration_seconds)),
      cell("voicemail", url ? h("audio", { class: "voicemail", controls: true, preload: "none", src: url }) : null),
    );
  }

  function callsQuery(after) {
    return query({ ...state, after, limit: PAGE });
  }

  let seq = 0;
  let next = null;
  async function load(after = null) {
    const mine = ++seq;
    if (!after) history.replaceState(null, "", `/calls${query(state)}`);
    error.textContent = "";
    tableEl.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await get(`/api/v1/calls${callsQuery(after)}`);
    } catch (failure) {
      if (mine !== seq) return;
      error.textContent = t("error.generic", { message: failure.message });
      tableEl.removeAttribute("aria-busy");
      return;
    }
    if (mine !== seq) return;
    const items = page.items || [];
    if (after) {
      body.append(...items.map(row));
    } else {
      fill(body, items.length ? items.map(row) : h("tr", {}, h("td", { colspan: columns.length, class: "muted empty" }, t("calls.none"))));
    }
    next = page.next_after;
    more.hidden = !next;
    tableEl.removeAttribute("aria-busy");
  }

  more.addEventListener("click", () => {
    if (next) load(next).catch(console.error);
  });
  await load();
  const reload = debounce(() => load().catch(console.error), 300);
  onEvent((event) => {
    if (event.event === "live.connected" || String(event.event).startsWith("call.")) reload();
  });
}
