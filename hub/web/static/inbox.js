// The inbox: conversations (with filters and unread counts), the open conversation with
// the contact's whole history and the reply box, and the contact card.

import { ApiError, get, post, query } from "./api.js";
import { contactCard } from "./contact.js";
import { channelLabel, debounce, fill, formatWhen, h, t, tabButtons, untrusted, untrustedString } from "./dom.js";
import { onEvent } from "./live.js";
import { messageItem, renderTimeline } from "./timeline.js";

const VIEWS = ["mine", "unassigned", "team", "all"];
const CHANNELS = ["telegram", "email", "phone", "site_chat", "form", "ad_lead", "api"];
const STATUSES = ["open", "pending", "closed"];
const TYPING_EVERY_MS = 3000; // a manager's "typing" goes to the client at most this often
const TYPING_SHOWN_MS = 6000; // a client's "typing" shows this long after its last signal

export async function start({ me, root }) {
  const params = new URLSearchParams(location.search);
  const state = {
    view: VIEWS.includes(params.get("view")) ? params.get("view") : "mine",
    channel: params.get("channel") || "",
    status: params.get("status") || "",
    selected: Number(params.get("c")) || null,
    conversation: null,
    contact: null,
    before: null,
    managers: [],
  };
  const canReassign = me.role === "head" || me.role === "admin";
  let myTypingAt = 0; // when this page last said that its manager is typing

  // ----- the three panes
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": t("inbox.views") });
  const channelSelect = h(
    "select",
    { id: "filter-channel", "aria-label": t("inbox.channel") },
    h("option", { value: "" }, t("inbox.any_channel")),
    CHANNELS.map((c) => h("option", { value: c, selected: state.channel === c }, channelLabel(c))),
  );
  const statusSelect = h(
    "select",
    { id: "filter-status", "aria-label": t("inbox.status") },
    h("option", { value: "" }, t("inbox.any_status")),
    STATUSES.map((s) => h("option", { value: s, selected: state.status === s }, t(`status.${s}`))),
  );
  const list = h("ul", { class: "plain conversations", id: "conversations", "aria-label": t("inbox.conversations") });
  const listPane = h(
    "aside",
    { class: "pane list-pane" },
    tabs,
    h("div", { class: "filters" }, channelSelect, statusSelect),
    list,
  );
  const convPane = h("section", { class: "pane conversation-pane", id: "conversation", "aria-label": t("inbox.conversation") });
  const cardPane = h("aside", { class: "pane contact-pane", "aria-label": t("contact.card") });
  fill(root, listPane, convPane, cardPane);
  root.classList.add("three-panes");
  fill(convPane, h("p", { class: "muted empty" }, t("inbox.pick")));

  channelSelect.addEventListener("change", () => {
    state.channel = channelSelect.value;
    refreshList();
  });
  statusSelect.addEventListener("change", () => {
    state.status = statusSelect.value;
    refreshList();
  });

  function remember() {
    const search = query({ view: state.view, channel: state.channel, status: state.status, c: state.selected });
    history.replaceState(null, "", `/inbox${search}`);
  }

  // ----- the list
  function renderTabs(counts) {
    const onpick = (view) => {
      state.view = view;
      refreshList();
    };
    fill(tabs, tabButtons(VIEWS, state.view, { idPrefix: "view", labelPrefix: "view", onpick, badges: counts }));
  }

  function listItem(item) {
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: `conv${item.id === state.selected ? " selected" : ""}${item.unread ? " unread" : ""}`,
          dataset: { id: item.id },
          "aria-current": item.id === state.selected ? "true" : null,
          onclick: () => select(item.id),
        },
        h(
          "div",
          { class: "row" },
          h("span", { class: "name" }, untrusted(item.contact_name, t("contact.unnamed"))),
          h("time", { datetime: item.last_message_at }, formatWhen(item.last_message_at, { short: true })),
        ),
        h("div", { class: "snippet", dir: "auto" }, item.last_message_text || ""),
        h(
          "div",
          { class: "row small" },
          h("span", { class: `tag ch-${item.channel}` }, channelLabel(item.channel)),
          h("span", { class: "assignee muted" }, untrusted(item.assignee_name, t("inbox.unassigned"))),
          item.status !== "open" ? h("span", { class: `status status-${item.status}` }, t(`status.${item.status}`)) : null,
          item.unread ? h("span", { class: "badge", "aria-label": t("inbox.unread") }, item.unread) : null,
        ),
      ),
    );
  }

  let listSeq = 0;
  async function refreshList() {
    const seq = ++listSeq;
    remember();
    const data = await get(
      `/api/v1/inbox${query({ view: state.view, channel: state.channel, status: state.status })}`,
    );
    if (seq !== listSeq) return; // a newer refresh is on its way
    renderTabs(data.counts);
    const items = data.items || [];
    fill(list, items.length ? items.map(listItem) : h("li", { class: "muted empty" }, t("inbox.none")));
    list.dataset.loaded = String(seq);
  }

  // ----- the open conversation
  async function select(id) {
    state.selected = id;
    state.before = null;
    for (const button of list.querySelectorAll("button.conv")) {
      const on = Number(button.dataset.id) === id;
      button.classList.toggle("selected", on);
      if (on) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    remember();
    await refreshConversation({ markRead: true });
  }

  let convSeq = 0;
  let frame = null; // {id, head, history, composer} of the open conversation
  async function refreshConversation({ markRead = false } = {}) {
    const id = state.selected;
    if (!id) return;
    const seq = ++convSeq;
    let conversation;
    try {
      conversation = await get(`/api/v1/conversations/${id}?limit=1`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        // Reassigned away from us, or never ours.
        frame = null;
        fill(convPane, h("p", { class: "muted empty" }, t("inbox.gone")));
        fill(cardPane);
        state.selected = null;
        remember();
        return;
      }
      throw error;
    }
    const [contact, timeline] = await Promise.all([
      get(`/api/v1/contacts/${conversation.contact_id}`),
      get(`/api/v1/contacts/${conversation.contact_id}/timeline?limit=100`),
    ]);
    if (seq !== convSeq) return;
    state.conversation = conversation;
    state.contact = contact;
    state.before = timeline.next_before || null;
    // The pane's frame stays while the same conversation is open, so that a live refresh
    // never loses the draft, the chosen channel or the focus of the reply box.
    let fresh = false;
    if (!frame || frame.id !== id) {
      frame = {
        id,
        head: h("div", { class: "head-slot" }),
        history: h("div", { class: "history" }),
        typing: h("p", { class: "client-typing muted small", id: "client-typing", hidden: true, "aria-live": "polite" }, t("conv.client_typing")),
        composer: composer(conversation, contact),
      };
      fill(convPane, frame.head, frame.history, frame.typing, frame.composer);
      fresh = true;
    }
    const history = frame.history;
    const atEnd = history.scrollHeight - history.scrollTop - history.clientHeight < 40;
    fill(frame.head, conversationHeader(conversation, contact));
    fillHistory(history, timeline.items || []);
    if (fresh || atEnd) history.scrollTop = history.scrollHeight;
    fill(cardPane, await contactCard(contact, { me, onChanged: () => refreshConversation() }));
    if (markRead) {
      post(`/api/v1/conversations/${id}/read`)
        .then(() => refreshList())
        .catch(() => {});
    }
  }

  function fillHistory(block, items) {
    fill(block);
    if (state.before) {
      block.append(
        h(
          "button",
          {
            type: "button",
            class: "link earlier",
            onclick: async (event) => {
              const more = await get(
                `/api/v1/contacts/${state.contact.id}/timeline${query({ before: state.before, limit: 100 })}`,
              );
              state.before = more.next_before || null;
              const ol = block.querySelector("ol.timeline");
              ol.prepend(...(more.items || []).map((m) => messageItem(m, { conversationId: state.selected, contactName: state.contact.name })));
              if (!state.before) event.target.remove();
            },
          },
          t("timeline.earlier"),
        ),
      );
    }
    block.append(renderTimeline(items, { conversationId: state.selected, contactName: state.contact && state.contact.name }));
  }

  async function act(path, body) {
    try {
      await post(path, body);
    } catch (error) {
      showError(error);
      return;
    }
    await Promise.all([refreshConversation(), refreshList()]);
  }

  function showError(error) {
    const box = convPane.querySelector(".action-error");
    if (box) box.textContent = t("error.generic", { message: error.message });
  }

  function assigneeName(conversation) {
    if (!conversation.assignee_id) return t("inbox.unassigned");
    if (conversation.assignee_name) return untrusted(conversation.assignee_name);
    const found = state.managers.find((m) => m.id === conversation.assignee_id);
    return found ? untrusted(found.name, `#${conversation.assignee_id}`) : `#${conversation.assignee_id}`;
  }

  function managerSelect(conversation) {
    const choices = state.managers.filter((m) => m.active !== false && m.id !== conversation.assignee_id);
    return h(
      "select",
      { id: "assign-to", "aria-label": t("conv.assign_to") },
      choices.map((m) => h("option", { value: m.id }, untrustedString(m.name, `#${m.id}`))),
    );
  }

  function conversationHeader(conversation, contact) {
    const mine = conversation.assignee_id === me.id;
    const actions = h("div", { class: "actions" });
    if (!conversation.assignee_id) {
      actions.append(
        h("button", { type: "button", id: "take", onclick: () => act(`/api/v1/conversations/${conversation.id}/take`) }, t("conv.take")),
      );
    }
    if (canReassign || mine) {
      const picker = managerSelect(conversation);
      actions.append(
        picker,
        h(
          "button",
          {
            type: "button",
            id: "assign",
            onclick: () =>
              picker.value &&
              act(`/api/v1/conversations/${conversation.id}/assign`, { manager_id: Number(picker.value) }),
          },
          canReassign ? t("conv.assign") : t("conv.transfer"),
        ),
      );
    }
    actions.append(
      conversation.status === "closed"
        ? h("button", { type: "button", id: "reopen", onclick: () => act(`/api/v1/conversations/${conversation.id}/reopen`) }, t("conv.reopen"))
        : h("button", { type: "button", id: "close", onclick: () => act(`/api/v1/conversations/${conversation.id}/close`) }, t("conv.close")),
    );
    return h(
      "header",
      { class: "conv-head", dataset: { id: conversation.id } },
      h(
        "div",
        { class: "row" },
        h("h2", {}, untrusted(contact.name, t("contact.unnamed"))),
        h("span", { class: `tag ch-${conversation.channel}` }, `${channelLabel(conversation.channel)} · `, untrusted(conversation.channel_account)),
        h("span", { class: `status status-${conversation.status}`, id: "conv-status" }, t(`status.${conversation.status}`)),
      ),
      h(
        "div",
        { class: "row small" },
        h("span", { id: "conv-assignee" }, t("conv.assignee"), ": ", assigneeName(conversation)),
        conversation.routing_reason
          ? h("span", { class: "muted routing-reason", id: "routing-reason" }, t("conv.routing_reason"), ": ", untrusted(conversation.routing_reason))
          : null,
      ),
      actions,
      h("p", { class: "error small action-error", role: "alert" }),
    );
  }

  function composer(conversation, contact) {
    const accounts = contact.reachable_accounts || [];
    const own = (a) => a.channel === conversation.channel && a.channel_account === conversation.channel_account;
    // The client blocked the bot or the address bounced: the conversation's own channel
    // is not offered (until the mark is cleared on the contact card).
    const ownUnreachable = (contact.unreachable_accounts || []).some(own);
    const others = accounts.filter((a) => !own(a));
    const ownLabel = `${channelLabel(conversation.channel)} · ${untrustedString(conversation.channel_account)}`;
    const picker = h(
      "select",
      { id: "reply-account", "aria-label": t("reply.via") },
      h(
        "option",
        { value: "", disabled: ownUnreachable && others.length > 0 },
        ownUnreachable ? `${ownLabel} (${t("contact.unreachable")})` : ownLabel,
      ),
      others.map((a, n) =>
        h(
          "option",
          { value: a.channel_account, dataset: { channel: a.channel }, selected: ownUnreachable && n === 0 },
          `${channelLabel(a.channel)} · ${untrustedString(a.channel_account)}`,
        ),
      ),
    );
    const text = h("textarea", {
      id: "reply-text",
      rows: 3,
      placeholder: t("reply.placeholder"),
      "aria-label": t("reply.text"),
    });
    const error = h("p", { class: "error small", role: "alert", id: "reply-error" });
    const send = async (asNote) => {
      const body = text.value.trim();
      if (!body) return;
      error.textContent = "";
      try {
        if (asNote) {
          await post(`/api/v1/conversations/${conversation.id}/notes`, { text: body });
        } else {
          const payload = { text: body };
          if (picker.value) payload.channel_account = picker.value;
          await post(`/api/v1/conversations/${conversation.id}/messages`, payload);
        }
      } catch (failure) {
        error.textContent =
          failure.status === 409 ? t("reply.unreachable", { message: failure.message }) : t("error.generic", { message: failure.message });
        return;
      }
      text.value = "";
      await refreshConversation();
      refreshList();
    };
    // The client sees "typing..." (site chat): told at most every 3 s while the manager types.
    text.addEventListener("input", () => {
      if (conversation.channel !== "site_chat" || !text.value.trim()) return;
      const now = Date.now();
      if (now - myTypingAt < TYPING_EVERY_MS) return;
      myTypingAt = now;
      post(`/api/v1/conversations/${conversation.id}/typing`).catch(() => {});
    });
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        send(false);
      }
    });
    return h(
      "form",
      {
        class: "composer",
        onsubmit: (event) => {
          event.preventDefault();
          send(false);
        },
      },
      text,
      error,
      h(
        "div",
        { class: "row" },
        h("label", { class: "small muted", for: "reply-account" }, t("reply.via")),
        picker,
        h("div", { class: "spacer" }),
        h("button", { type: "button", id: "add-note", onclick: () => send(true) }, t("reply.note")),
        h("button", { type: "submit", id: "send", class: "primary" }, t("reply.send")),
      ),
    );
  }

  // ----- live updates: re-fetch what is on screen
  const liveList = debounce(() => refreshList().catch(console.error), 100);
  const liveConversation = debounce(() => refreshConversation({ markRead: true }).catch(console.error), 100);
  let typingTimer = null;
  function clientTyping(event) {
    if (!frame || frame.id !== event.conversation_id) return;
    // Only the client's typing: a manager's (ours, coming back) is not shown. Without a
    // "by" in the event, our own signal of the last few seconds is taken for the echo.
    if (event.by !== undefined ? event.by === "manager" : Date.now() - myTypingAt < TYPING_EVERY_MS + 1000) return;
    const shown = frame.typing;
    shown.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      shown.hidden = true;
    }, TYPING_SHOWN_MS);
  }
  onEvent((event) => {
    if (event.event === "conversation.typing") {
      // Nothing to fetch: only "the client is typing" on the open conversation.
      clientTyping(event);
      return;
    }
    if (frame && event.conversation_id === frame.id && event.event.startsWith("message.")) {
      frame.typing.hidden = true; // the client's message arrived
    }
    if (event.event === "conversation.read") {
      // Someone read it (this page, most often): the unread counts change, nothing else;
      // fetching the conversation again would mark it read again.
      liveList();
      return;
    }
    if (event.event === "live.connected") {
      liveList();
      liveConversation();
      return;
    }
    liveList();
    const contactId = state.contact && state.contact.id;
    if (
      state.selected &&
      (event.conversation_id === state.selected || (contactId && event.contact_id === contactId))
    ) {
      liveConversation();
    }
  });

  try {
    state.managers = (await get("/api/v1/managers")).items || [];
  } catch {
    state.managers = [];
  }
  renderTabs(null);
  await refreshList();
  if (state.selected) await refreshConversation({ markRead: true });
}
