// The contact card (identities, attribution, deals, tasks, merges) and the contact page.

import { api, get, post } from "./api.js";
import { channelLabel, fill, formatMoney, formatWhen, h, localName, t, untrusted, untrustedString } from "./dom.js";
import { onEvent } from "./live.js";
import { editButton } from "./dealedit.js";
import { renderTimeline } from "./timeline.js";

let funnelsPromise = null;

/** Funnels and stages, fetched once per page: stage ids to names. */
export function funnels() {
  funnelsPromise ??= get("/api/v1/funnels").then((data) => data.items || []);
  return funnelsPromise;
}

export async function stageIndex() {
  const index = new Map();
  for (const funnel of await funnels()) {
    for (const stage of funnel.stages || []) index.set(stage.id, { funnel, stage });
  }
  return index;
}

const ATTRIBUTION = ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "referrer", "landing_page"];

function section(title, ...body) {
  return h("section", { class: "card-section" }, h("h3", {}, title), ...body);
}

function touchRows(touch) {
  if (!touch) return [h("p", { class: "muted" }, "—")];
  const rows = [
    h("dt", {}, t("contact.channel")),
    h("dd", {}, `${channelLabel(touch.channel)} · `, untrusted(touch.channel_account)),
  ];
  for (const key of ATTRIBUTION) {
    if (touch[key]) rows.push(h("dt", {}, key), h("dd", {}, untrusted(touch[key])));
  }
  rows.push(h("dt", {}, t("contact.when")), h("dd", {}, formatWhen(touch.occurred_at)));
  return [h("dl", { class: "facts" }, rows)];
}

function identityRow(identity, contact, onChanged) {
  const flagged = Boolean(identity.unreachable_at);
  return h(
    "li",
    { class: flagged ? "unreachable" : null, dataset: { identityId: identity.id } },
    h("span", { class: "tag" }, t(`identity.${identity.kind}`)),
    " ",
    h("span", { class: "mono" }, untrusted(identity.value)),
    flagged ? h("span", { class: "muted" }, ` (${t("contact.unreachable")})`) : null,
    flagged
      ? h(
          "div",
          { class: "muted small unreachable-why" },
          formatWhen(identity.unreachable_at),
          identity.unreachable_reason ? " · " : "",
          identity.unreachable_reason ? untrusted(identity.unreachable_reason) : "",
          " ",
          h(
            "button",
            {
              type: "button",
              class: "link clear-unreachable",
              onclick: async () => {
                await api("DELETE", `/api/v1/contacts/${contact.id}/identities/${identity.id}/unreachable`);
                if (onChanged) onChanged();
              },
            },
            t("contact.clear_unreachable"),
          ),
        )
      : null,
  );
}

/** Click-to-call: the hub rings the manager's phone, then the client's. When the hub
 * cannot (no SIP line or phone for this manager: a 409), its message is shown. */
function callButton(contact) {
  const phones = (contact.identities || []).filter((i) => i.kind === "phone" && !i.unreachable_at);
  if (!phones.length) return null;
  const status = h("span", { class: "small call-status", role: "status", id: "call-status" });
  const button = h(
    "button",
    {
      type: "button",
      class: "call-button",
      id: "call-contact",
      onclick: async () => {
        button.disabled = true;
        status.className = "small call-status muted";
        status.textContent = t("contact.calling");
        try {
          await post("/api/v1/calls", { contact_id: contact.id });
          status.textContent = t("contact.call_started");
        } catch (failure) {
          status.className = "small call-status error";
          status.textContent = t("contact.call_failed", { message: failure.message || String(failure.status || "") });
        } finally {
          button.disabled = false;
        }
      },
    },
    t("contact.call"),
  );
  return h("div", { class: "call-row" }, button, " ", status);
}

export async function contactCard(contact, { me = null, onChanged } = {}) {
  const stages = await stageIndex().catch(() => new Map());
  const card = h("div", { class: "contact-card", id: "contact-card", dataset: { contactId: contact.id } });
  const title = untrusted(contact.name, t("contact.unnamed"));
  card.append(
    h(
      "header",
      { class: "card-head" },
      h("h2", {}, h("a", { href: `/contacts/${contact.id}` }, title)),
      contact.company ? h("p", { class: "muted" }, untrusted(contact.company)) : null,
      contact.segment ? h("span", { class: "tag" }, untrusted(contact.segment)) : null,
      callButton(contact),
    ),
    section(
      t("contact.identities"),
      h("ul", { class: "plain identities" }, (contact.identities || []).map((i) => identityRow(i, contact, onChanged))),
    ),
    section(t("contact.first_touch"), ...touchRows(contact.first_touch)),
  );
  if (contact.last_touch && contact.first_touch && contact.last_touch.id !== contact.first_touch.id) {
    card.append(section(t("contact.last_touch"), ...touchRows(contact.last_touch)));
  }
  const deals = contact.deals || [];
  card.append(
    section(
      t("contact.deals"),
      deals.length
        ? h(
            "ul",
            { class: "plain deals" },
            deals.map((deal) => {
              const where = stages.get(deal.stage_id);
              return h(
                "li",
                { class: "deal-item", dataset: { dealId: deal.id } },
                h("a", { href: `/board?funnel=${encodeURIComponent(where ? where.funnel.code : "")}` }, untrusted(deal.title, `#${deal.id}`)),
                " ",
                editButton(deal, { me, onSaved: () => onChanged && onChanged() }),
                h(
                  "div",
                  { class: "muted small" },
                  where ? `${localName(where.funnel)} · ${localName(where.stage)}` : "",
                  deal.amount ? h("span", { class: "amount" }, ` · ${formatMoney(deal.amount, deal.currency)}`) : "",
                  deal.product ? ` · ${deal.product}` : "",
                ),
              );
            }),
          )
        : h("p", { class: "muted" }, t("contact.no_deals")),
    ),
  );
  const tasks = contact.tasks || [];
  card.append(
    section(
      t("contact.tasks"),
      tasks.length
        ? h(
            "ul",
            { class: "plain tasks" },
            tasks.map((task) =>
              h(
                "li",
                { class: task.status === "done" ? "done" : null },
                h("span", {}, untrusted(task.title)),
                h(
                  "div",
                  { class: "muted small" },
                  t(`task.status.${task.status}`),
                  task.due_at ? ` · ${t("task.due")} ${formatWhen(task.due_at)}` : "",
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("contact.no_tasks")),
    ),
  );
  const merges = contact.merges || [];
  if (merges.length) {
    card.append(
      section(
        t("contact.merges"),
        h(
          "ul",
          { class: "plain merges" },
          merges.map((merge) =>
            h(
              "li",
              {},
              t("contact.merged", { merged: merge.merged_id, survivor: merge.survivor_id }),
              h("div", { class: "muted small" }, untrusted(merge.reason), " · ", formatWhen(merge.created_at)),
              merge.undone_at
                ? h("div", { class: "muted small" }, t("contact.merge_undone", { when: formatWhen(merge.undone_at) }))
                : h(
                    "button",
                    {
                      type: "button",
                      class: "link",
                      onclick: async () => {
                        await post(`/api/v1/merges/${merge.id}/undo`);
                        if (onChanged) onChanged();
                      },
                    },
                    t("contact.undo_merge"),
                  ),
            ),
          ),
        ),
      ),
    );
  }
  return card;
}

/** /contacts/{id}: the card beside the contact's whole history. */
export async function start({ me, root }) {
  const contactId = Number(document.body.dataset.contactId);
  const cardPane = h("aside", { class: "pane contact-pane" });
  const historyPane = h("section", { class: "pane conversation-pane" });
  fill(root, h("div", { class: "contact-page" }, historyPane, cardPane));
  root.classList.add("two-panes");
  const load = async () => {
    const contact = await get(`/api/v1/contacts/${contactId}`);
    fill(cardPane, await contactCard(contact, { me, onChanged: load }));
    const timeline = await get(`/api/v1/contacts/${contactId}/timeline?limit=200`);
    fill(
      historyPane,
      h("header", { class: "conv-head" }, h("h2", {}, untrusted(contact.name, t("contact.unnamed")))),
      h(
        "ul",
        { class: "plain conv-links" },
        (contact.conversations || []).map((c) =>
          h(
            "li",
            {},
            h("a", { href: `/inbox?view=all&c=${c.id}` }, `${channelLabel(c.channel)} · `, untrusted(c.channel_account)),
            " ",
            h("span", { class: `status status-${c.status}` }, t(`status.${c.status}`)),
          ),
        ),
      ),
      renderTimeline(timeline.items || [], { contactName: contact.name }),
    );
    document.title = `${untrustedString(contact.name, t("contact.unnamed"))} — omnihub`;
  };
  await load();
  onEvent((event) => {
    if (event.event === "live.connected" || event.contact_id === contactId) load().catch(console.error);
  });
}
