// The entry point of every page: the header, then the page's own module.

import { api, get, setCsrf } from "./api.js";
import { h, fill, t, LOCALE, untrusted } from "./dom.js";
import { connect, onStatus } from "./live.js";
import { searchBox } from "./search.js";

const PAGES = {
  inbox: () => import("./inbox.js"),
  board: () => import("./board.js"),
  tasks: () => import("./tasks.js"),
  calls: () => import("./calls.js"),
  reports: () => import("./reports.js"),
  contact: () => import("./contact.js"),
};

function header(me) {
  const page = document.body.dataset.page;
  const link = (name, href) =>
    h("a", { href, class: "nav-link", "aria-current": page === name ? "page" : null }, t(`nav.${name}`));
  const localeSelect = h(
    "select",
    {
      id: "locale",
      "aria-label": t("header.language"),
      onchange: async (event) => {
        await api("PATCH", "/api/v1/me", { locale: event.target.value });
        location.reload();
      },
    },
    h("option", { value: "ru", selected: LOCALE === "ru" }, "Русский"),
    h("option", { value: "en", selected: LOCALE === "en" }, "English"),
  );
  const status = h("span", { class: "live-status", role: "status", title: t("live.offline") });
  const channelAlert = h("a", { class: "channel-alert", id: "channel-alert", href: "/api/v1/channels", hidden: true, role: "alert" });
  if (me.role === "admin") watchChannels(channelAlert);
  onStatus((state) => {
    status.title = t(`live.${state}`);
    status.dataset.state = state;
  });
  return [
    h("a", { class: "brand", href: "/inbox" }, "omnihub"),
    h("nav", { "aria-label": t("nav.label") }, link("inbox", "/inbox"), link("board", "/board"), link("tasks", "/tasks"), link("calls", "/calls"), link("reports", "/reports")),
    searchBox(),
    h("div", { class: "spacer" }),
    channelAlert,
    status,
    localeSelect,
    h(
      "span",
      { class: "me", id: "me" },
      h("strong", {}, untrusted(me.name)),
      " ",
      h("span", { class: "role" }, t(`role.${me.role}`)),
    ),
    h(
      "button",
      {
        type: "button",
        class: "ghost",
        id: "logout",
        onclick: async () => {
          try {
            await api("DELETE", "/api/v1/session");
          } finally {
            location.assign("/login");
          }
        },
      },
      t("header.logout"),
    ),
  ];
}

// Admins: a warning in the header while a channel has been failing for over 5 minutes.
function watchChannels(element) {
  const check = async () => {
    try {
      const body = await get("/api/v1/channels");
      const failing = body.channels.filter((c) => c.alert).map((c) => `${c.channel} ${c.account}`);
      element.hidden = failing.length === 0;
      element.textContent = t("header.channels_failing", { names: failing.join(", ") });
    } catch (error) {
      console.warn("channels:", error);
    }
  };
  check();
  setInterval(check, 60_000);
}

async function main() {
  const page = document.body.dataset.page;
  if (page === "login") {
    (await import("./login.js")).start();
    return;
  }
  if (page === "setup") {
    (await import("./setup.js")).start();
    return;
  }
  const session = await get("/api/v1/me");
  setCsrf(session.csrf_token);
  const me = session.manager;
  fill(document.getElementById("top"), header(me));
  const module = await PAGES[page]();
  await module.start({ me, root: document.getElementById("main") });
  connect();
}

main().catch((error) => {
  console.error(error);
  const main = document.getElementById("main");
  if (main && error && error.status !== 401) {
    fill(main, h("p", { class: "error", role: "alert" }, t("error.load"), " ", String(error.message || "")));
  }
});
