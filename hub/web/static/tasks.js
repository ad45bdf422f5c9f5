// Tasks: mine, overdue, all; open or done; complete with one click.

import { get, post, query } from "./api.js";
import { debounce, fill, formatWhen, h, t, tabButtons, untrusted } from "./dom.js";
import { onEvent } from "./live.js";

const VIEWS = ["mine", "overdue", "all"];

export async function start({ me, root }) {
  const params = new URLSearchParams(location.search);
  const state = {
    view: VIEWS.includes(params.get("view")) ? params.get("view") : "mine",
    status: params.get("status") === "done" ? "done" : "open",
  };
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": t("tasks.views") });
  const status = h(
    "select",
    { id: "task-status", "aria-label": t("tasks.status") },
    ["open", "done"].map((s) => h("option", { value: s, selected: state.status === s }, t(`task.status.${s}`))),
  );
  const list = h("ul", { class: "plain task-list", id: "tasks" });
  const error = h("p", { class: "error small", role: "alert" });
  fill(root, h("div", { class: "tasks-page" }, h("div", { class: "toolbar" }, h("h1", {}, t("nav.tasks")), tabs, status, error), list));
  root.classList.add("one-pane");
  status.addEventListener("change", () => {
    state.status = status.value;
    load();
  });

  function renderTabs() {
    const onpick = (view) => {
      state.view = view;
      load();
    };
    fill(tabs, tabButtons(VIEWS, state.view, { idPrefix: "tasks", labelPrefix: "tasks.view", onpick }));
  }

  function row(task) {
    const overdue = task.status === "open" && task.due_at && new Date(task.due_at) < new Date();
    return h(
      "li",
      { class: `task${overdue ? " overdue" : ""}${task.status === "done" ? " done" : ""}`, dataset: { id: task.id } },
      h(
        "div",
        { class: "task-main" },
        h("span", { class: "tag" }, t(`task.kind.${task.kind}`)),
        h("span", { class: "task-title" }, untrusted(task.title)),
      ),
      h(
        "div",
        { class: "row small muted" },
        task.due_at ? h("time", { datetime: task.due_at }, `${t("task.due")} ${formatWhen(task.due_at)}`) : null,
        overdue ? h("span", { class: "status status-overdue" }, t("task.overdue")) : null,
        task.contact_id ? h("a", { href: `/contacts/${task.contact_id}` }, untrusted(task.contact_name, t("task.contact"))) : null,
        task.assignee_name ? h("span", {}, untrusted(task.assignee_name)) : null,
      ),
      task.status === "open"
        ? h(
            "button",
            {
              type: "button",
              class: "complete",
              onclick: async () => {
                try {
                  await post(`/api/v1/tasks/${task.id}/complete`);
                } catch (failure) {
                  error.textContent = t("error.generic", { message: failure.message });
                }
                await load();
              },
            },
            t("task.complete"),
          )
        : h("span", { class: "muted small" }, formatWhen(task.done_at)),
    );
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    renderTabs();
    history.replaceState(null, "", `/tasks${query({ view: state.view, status: state.status })}`);
    const data = await get(
      `/api/v1/tasks${query({
        view: state.view,
        status: state.view === "overdue" ? "open" : state.status,
        assignee_id: state.view === "mine" ? me.id : null,
        limit: 200,
      })}`,
    );
    if (mine !== seq) return;
    let items = data.items || [];
    if (state.view === "overdue") {
      const now = Date.now();
      items = items.filter((task) => task.overdue_at || (task.due_at && Date.parse(task.due_at) < now));
    }
    fill(list, items.length ? items.map(row) : h("li", { class: "muted empty" }, t("tasks.none")));
  }

  await load();
  const reload = debounce(() => load().catch(console.error), 150);
  onEvent((event) => {
    if (event.event === "live.connected" || event.task_id || String(event.event).startsWith("task.")) reload();
  });
}
