// A board per funnel: deals in stage columns, moved by drag and drop or the card's menu.

import { get, post, query } from "./api.js";
import { funnels } from "./contact.js";
import { editButton } from "./dealedit.js";
import { debounce, fill, formatMoney, h, localName, t, untrusted, untrustedString } from "./dom.js";
import { onEvent } from "./live.js";

export async function start({ me, root }) {
  const all = await funnels();
  const params = new URLSearchParams(location.search);
  let code = params.get("funnel");
  if (!all.some((f) => f.code === code)) code = all.length ? all[0].code : null;
  const picker = h(
    "select",
    { id: "funnel", "aria-label": t("board.funnel") },
    all.map((f) => h("option", { value: f.code, selected: f.code === code }, localName(f))),
  );
  const error = h("p", { class: "error small", role: "alert" });
  const columns = h("div", { class: "board", id: "board" });
  fill(root, h("div", { class: "board-page" }, h("div", { class: "toolbar" }, h("h1", {}, t("nav.board")), picker, error), columns));
  root.classList.add("one-pane");
  picker.addEventListener("change", () => {
    code = picker.value;
    history.replaceState(null, "", `/board${query({ funnel: code })}`);
    load();
  });

  async function move(dealId, stage) {
    const body = { stage: stage.code };
    if (stage.kind === "lost") {
      const reason = window.prompt(t("board.lost_reason"));
      if (!reason) return;
      body.lost_reason = reason;
    }
    error.textContent = "";
    try {
      await post(`/api/v1/deals/${dealId}/stage`, body);
    } catch (failure) {
      error.textContent = t("error.generic", { message: failure.message });
    }
    await load();
  }

  function card(deal, stages) {
    const menu = h(
      "select",
      {
        class: "move",
        "aria-label": t("board.move", { title: untrustedString(deal.title, `#${deal.id}`) }),
        onchange: (event) => {
          const stage = stages.find((s) => s.code === event.target.value);
          if (stage) move(deal.id, stage);
        },
      },
      h("option", { value: "" }, t("board.move_to")),
      stages.filter((s) => s.id !== deal.stage_id).map((s) => h("option", { value: s.code }, localName(s))),
    );
    return h(
      "li",
      {
        class: "deal",
        draggable: "true",
        dataset: { id: deal.id },
        ondragstart: (event) => {
          event.dataTransfer.setData("text/plain", String(deal.id));
          event.dataTransfer.effectAllowed = "move";
        },
      },
      h("div", { class: "deal-title" }, untrusted(deal.title, `#${deal.id}`)),
      h(
        "div",
        { class: "row small" },
        deal.contact_id ? h("a", { href: `/contacts/${deal.contact_id}` }, untrusted(deal.contact_name, t("contact.unnamed"))) : null,
        h("span", { class: "amount" }, formatMoney(deal.amount, deal.currency)),
      ),
      h("div", { class: "row small deal-actions" }, menu, editButton(deal, { me, onSaved: () => load() })),
    );
  }

  let seq = 0;
  async function load() {
    if (!code) {
      fill(columns, h("p", { class: "muted" }, t("board.none")));
      return;
    }
    const mine = ++seq;
    const board = await get(`/api/v1/funnels/${encodeURIComponent(code)}/board`);
    if (mine !== seq) return;
    const stages = board.stages || [];
    fill(
      columns,
      stages.map((stage) => {
        const deals = stage.deals || [];
        const list = h("ul", { class: "plain deals" }, deals.map((d) => card({ ...d, stage_id: stage.id }, stages)));
        return h(
          "section",
          {
            class: `column kind-${stage.kind || "open"}`,
            dataset: { stage: stage.code },
            "aria-label": localName(stage),
            ondragover: (event) => {
              event.preventDefault();
              event.currentTarget.classList.add("drop");
            },
            ondragleave: (event) => event.currentTarget.classList.remove("drop"),
            ondrop: (event) => {
              event.preventDefault();
              event.currentTarget.classList.remove("drop");
              const id = Number(event.dataTransfer.getData("text/plain"));
              if (id && !deals.some((d) => d.id === id)) move(id, stage);
            },
          },
          h("h2", {}, localName(stage), " ", h("span", { class: "count" }, deals.length)),
          list,
        );
      }),
    );
  }

  await load();
  const reload = debounce(() => load().catch(console.error), 150);
  onEvent((event) => {
    if (event.event === "live.connected" || event.deal_id || String(event.event).startsWith("deal.")) reload();
  });
}
