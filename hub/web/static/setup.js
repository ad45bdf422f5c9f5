// The first run: the one-time link's token (in the URL's fragment) and a form that
// creates the first admin (POST /api/v1/setup), who is then logged in.

import { api, setCsrf } from "./api.js";
import { h, fill, t, LOCALE } from "./dom.js";

export function start() {
  const root = document.getElementById("main");
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname + location.search); // the token off screen
  const error = h("p", { class: "error", role: "alert", id: "setup-error" });
  if (!token) {
    fill(root, h("div", { class: "login-card" }, h("h1", {}, "omnihub"), h("p", { role: "alert" }, t("setup.no_token"))));
    return;
  }
  const field = (id, type, autocomplete, label) => [
    h("label", { for: id }, t(label)),
    h("input", { id, type, name: id, autocomplete, required: true, maxlength: type === "password" ? 1024 : 320 }),
  ];
  const submit = h("button", { type: "submit", class: "primary" }, t("setup.submit"));
  const form = h(
    "form",
    { class: "login-card", id: "setup-form" },
    h("h1", {}, "omnihub"),
    h("p", { class: "muted" }, t("setup.title")),
    field("name", "text", "name", "setup.name"),
    field("email", "email", "username", "setup.email"),
    field("password", "password", "new-password", "setup.password"),
    field("repeat", "password", "new-password", "setup.repeat"),
    error,
    submit,
  );
  const value = (id) => form.querySelector(`#${id}`).value;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (value("password") !== value("repeat")) {
      error.textContent = t("setup.mismatch");
      return;
    }
    submit.disabled = true;
    try {
      const session = await api("POST", "/api/v1/setup", {
        token,
        name: value("name"),
        email: value("email"),
        password: value("password"),
        locale: LOCALE === "ru" ? "ru" : "en",
      });
      setCsrf(session.csrf_token);
      done(root);
    } catch (failure) {
      submit.disabled = false;
      if (failure.status === 403) error.textContent = t("setup.bad_link");
      else if (failure.status === 409) {
        error.textContent = t("setup.done_already");
        error.append(" ", h("a", { href: "/login" }, t("setup.to_login")));
      } else error.textContent = t("error.generic", { message: failure.message });
    }
  });
  fill(root, form);
  form.querySelector("#name").focus();
}

function done(root) {
  fill(
    root,
    h(
      "div",
      { class: "login-card", id: "setup-done" },
      h("h1", {}, "omnihub"),
      h("p", { role: "status" }, t("setup.created")),
      h("p", { class: "muted" }, t("setup.next")),
      h("a", { class: "button primary", href: "/inbox", id: "open-inbox" }, t("setup.open_inbox")),
    ),
  );
}
