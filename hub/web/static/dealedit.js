// A deal's edit form (title, amount, currency, product; the owner for heads and admins)
// in a dialog, saved by PATCH /api/v1/deals/{id}, with the deal's history below it.

import { api, get } from "./api.js";
import { fill, formatMoney, formatWhen, h, t, untrusted, untrustedString } from "./dom.js";

let managersPromise = null;
const managers = () => {
  managersPromise ??= get("/api/v1/managers")
    .then((data) => data.items || [])
    .catch(() => []);
  return managersPromise;
};

const canReassign = (me) => me && (me.role === "head" || me.role === "admin");

/** The "Edit" button of a deal: opens the dialog; `onSaved(deal)` after a save. */
export function editButton(deal, { me, onSaved, label = null } = {}) {
  return h(
    "button",
    {
      type: "button",
      class: "link edit-deal",
      dataset: { dealId: deal.id },
      "aria-label": label || t("deal.edit_title", { title: untrustedString(deal.title, `#${deal.id}`) }),
      onclick: (event) => {
        event.stopPropagation();
        openDealEditor(deal.id, { me, onSaved }).catch((error) => console.error(error));
      },
    },
    t("deal.edit"),
  );
}

function dialogElement() {
  let dialog = document.getElementById("deal-dialog");
  if (!dialog) {
    dialog = h("dialog", { id: "deal-dialog", class: "deal-dialog", "aria-labelledby": "deal-dialog-title" });
    document.body.append(dialog);
  }
  return dialog;
}

function describe(value, field, currency) {
  if (value === null || value === undefined || value === "") return "—";
  if (field === "amount") return formatMoney(value, currency);
  return untrusted(String(value));
}

/** The deal's history: who changed what and when, newest last. */
export function dealHistory(deal, names = new Map()) {
  const entries = deal.history || [];
  if (!entries.length) return h("p", { class: "muted small", id: "deal-history" }, t("deal.no_history"));
  const actor = (raw) => {
    const found = /^manager:(\d+)$/.exec(raw || "");
    const name = found ? names.get(Number(found[1])) : null;
    return name ? untrusted(name) : untrusted(raw || "", t("deal.system"));
  };
  return h(
    "ol",
    { class: "plain deal-history", id: "deal-history" },
    entries.map((entry) => {
      const changes = entry.details && Array.isArray(entry.details.changes) ? entry.details.changes : [];
      return h(
        "li",
        { dataset: { action: entry.action } },
        h("div", { class: "muted small" }, formatWhen(entry.at), " · ", actor(entry.actor), " · ", entry.action),
        changes.length
          ? h(
              "ul",
              { class: "plain changes" },
              changes.map((change) => {
                const field = change.field === "owner_id" ? "owner" : change.field;
                const show = (value) =>
                  change.field === "owner_id" && value !== null && value !== undefined
                    ? untrusted(names.get(Number(value)) || `#${value}`)
                    : describe(value, change.field, deal.currency);
                return h(
                  "li",
                  { dataset: { field: change.field } },
                  h("span", { class: "field-name" }, t(`deal.${field}`)),
                  ": ",
                  show(change.old),
                  " → ",
                  show(change.new),
                );
              }),
            )
          : null,
      );
    }),
  );
}

/** Open the editor of deal `dealId`. */
export async function openDealEditor(dealId, { me, onSaved } = {}) {
  const dialog = dialogElement();
  const [deal, people] = await Promise.all([get(`/api/v1/deals/${dealId}`), managers()]);
  const names = new Map(people.map((m) => [m.id, m.name]));
  const error = h("p", { class: "error small", role: "alert", id: "deal-error" });
  const status = h("p", { class: "ok small", role: "status", id: "deal-status" });
  const historyBox = h("div", { class: "history-box" }, dealHistory(deal, names));
  const field = (id, label, input) => h("label", { class: "field", for: id }, h("span", {}, label), input);
  const title = h("input", { id: "deal-title", name: "title", required: true, maxlength: 300, value: deal.title || "" });
  const amount = h("input", {
    id: "deal-amount",
    name: "amount",
    type: "number",
    min: 0,
    step: "0.01",
    inputmode: "decimal",
    value: deal.amount ?? "",
  });
  const currency = h("input", {
    id: "deal-currency",
    name: "currency",
    required: true,
    maxlength: 3,
    pattern: "[A-Za-z]{3}",
    class: "short",
    value: deal.currency || "RUB",
  });
  const product = h("input", { id: "deal-product", name: "product", maxlength: 64, value: deal.product || "" });
  let owner = null;
  if (canReassign(me)) {
    const choices = people.filter((m) => m.active || m.id === deal.owner_id);
    owner = h(
      "select",
      { id: "deal-owner", name: "owner_id" },
      deal.owner_id ? null : h("option", { value: "", selected: true }, t("inbox.unassigned")),
      choices.map((m) => h("option", { value: String(m.id), selected: m.id === deal.owner_id }, untrustedString(m.name))),
    );
  }
  let current = deal;
  const save = h("button", { type: "submit", class: "primary", id: "deal-save" }, t("deal.save"));
  const form = h(
    "form",
    {
      class: "deal-form",
      id: "deal-form",
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = "";
        status.textContent = "";
        const changes = {};
        const newTitle = title.value.trim();
        if (newTitle !== (current.title || "")) changes.title = newTitle;
        const newAmount = amount.value.trim();
        const oldAmount = current.amount === null || current.amount === undefined ? "" : String(current.amount);
        if (newAmount === "" ? oldAmount !== "" : Number(newAmount) !== Number(oldAmount)) {
          changes.amount = newAmount === "" ? null : newAmount;
        }
        const newCurrency = currency.value.trim().toUpperCase();
        if (newCurrency !== current.currency) changes.currency = newCurrency;
        const newProduct = product.value.trim();
        if (newProduct !== (current.product || "")) changes.product = newProduct || null;
        if (owner && owner.value && Number(owner.value) !== current.owner_id) changes.owner_id = Number(owner.value);
        if (!Object.keys(changes).length) {
          status.textContent = t("deal.unchanged");
          return;
        }
        save.disabled = true;
        try {
          current = await api("PATCH", `/api/v1/deals/${dealId}`, changes);
          status.textContent = t("deal.saved");
          fill(historyBox, dealHistory(current, names));
          if (onSaved) onSaved(current);
        } catch (failure) {
          error.textContent = t("error.generic", { message: failure.message });
        } finally {
          save.disabled = false;
        }
      },
    },
    field("deal-title", t("deal.title"), title),
    h("div", { class: "row" }, field("deal-amount", t("deal.amount"), amount), field("deal-currency", t("deal.currency"), currency)),
    field("deal-product", t("deal.product"), product),
    owner ? field("deal-owner", t("deal.owner"), owner) : null,
    error,
    status,
    h(
      "div",
      { class: "actions" },
      save,
      h("button", { type: "button", id: "deal-close", onclick: () => dialog.close() }, t("deal.close")),
    ),
  );
  fill(
    dialog,
    h("h2", { id: "deal-dialog-title" }, t("deal.editing"), " ", untrusted(deal.title, `#${deal.id}`)),
    form,
    h("section", { class: "card-section" }, h("h3", {}, t("deal.history")), historyBox),
  );
  dialog.dataset.dealId = String(dealId);
  if (!dialog.open) dialog.showModal();
  title.focus();
}
