// The login form: POST /api/v1/session, then on to the page that sent us here.

import { api, setCsrf } from "./api.js";
import { h, fill, t } from "./dom.js";

function safeNext(raw) {
  // The server already cleaned it; keep only a local path all the same.
  if (typeof raw !== "string" || !raw.startsWith("/") || raw.startsWith("//") || raw.includes("\\")) {
    return "/inbox";
  }
  return raw;
}

export function start() {
  const root = document.getElementById("main");
  const next = safeNext(document.body.dataset.next);
  const error = h("p", { class: "error", role: "alert", id: "login-error" });
  const email = h("input", { id: "email", type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", class: "primary" }, t("login.submit"));
  const form = h(
    "form",
    {
      class: "login-card",
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        try {
          const session = await api("POST", "/api/v1/session", { email: email.value, password: password.value });
          const chosen = new URLSearchParams(location.search).get("lang");
          if ((chosen === "ru" || chosen === "en") && session.manager.locale !== chosen) {
            // A language picked on this page becomes the manager's own.
            setCsrf(session.csrf_token);
            await api("PATCH", "/api/v1/me", { locale: chosen }).catch(() => {});
          }
          location.assign(next);
        } catch (failure) {
          error.textContent =
            failure.status === 401
              ? t("login.wrong")
              : failure.status === 429
                ? t("login.too_many")
                : t("error.generic", { message: failure.message });
          submit.disabled = false;
        }
      },
    },
    h("h1", {}, "omnihub"),
    h("p", { class: "muted" }, t("login.title")),
    h("label", { for: "email" }, t("login.email")),
    email,
    h("label", { for: "password" }, t("login.password")),
    password,
    error,
    submit,
    h(
      "p",
      { class: "login-langs" },
      h("a", { href: `/login?lang=ru&next=${encodeURIComponent(next)}`, lang: "ru" }, "Русский"),
      h("a", { href: `/login?lang=en&next=${encodeURIComponent(next)}`, lang: "en" }, "English"),
    ),
  );
  fill(root, form);
  email.focus();
}
