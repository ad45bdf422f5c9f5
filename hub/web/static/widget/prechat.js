// The pre-chat form: which fields it asks (the widget's prechat settings; out of hours an
// email or a phone is a must), drawing it, and reading it back with its errors.

import { h, str } from "./dom.js";

const FIELDS = ["name", "email", "phone"];
const MAX_LENGTH = { name: 200, email: 320, phone: 40 }; // what the hub accepts

/** The fields to ask, [{name, rule: "optional" | "required"}], and whether it is out of hours. */
export function prechatFields(widget) {
  const rules = widget && widget.prechat && typeof widget.prechat === "object" ? widget.prechat : {};
  const offline = Boolean(widget) && widget.open === false;
  const fields = [];
  for (const name of FIELDS) {
    let rule = ["off", "optional", "required"].includes(rules[name]) ? rules[name] : "off";
    // Out of hours an answer needs a way back: email and phone are offered.
    if (offline && rule === "off" && name !== "name") rule = "optional";
    if (rule !== "off") fields.push({ name, rule });
  }
  return { fields, offline };
}

/**
 * Draw the form into `form`: one labelled input per field (what was typed is kept), each
 * field's error under it, the form's own error above the button.
 */
export function drawPrechat(form, { t, fields, offline, errors, known }) {
  const typed = {};
  for (const input of form.querySelectorAll("input")) typed[input.name] = input.value;
  const rows = fields.map(({ name, rule }) => {
    const id = `prechat-${name}`;
    const error = errors[name] || "";
    return h(
      "div",
      { class: "field" },
      h("label", { for: id }, t(name), " ", h("span", { class: "hint" }, `(${t(rule)})`)),
      h("input", {
        id,
        name,
        type: name === "email" ? "email" : name === "phone" ? "tel" : "text",
        autocomplete: name === "name" ? "name" : name === "email" ? "email" : "tel",
        maxlength: String(MAX_LENGTH[name]),
        required: rule === "required",
        "aria-required": rule === "required" ? "true" : "false",
        "aria-invalid": error ? "true" : null,
        "aria-describedby": error ? `${id}-error` : null,
        value: typed[name] ?? str(known[name]),
      }),
      h("p", { class: "error", id: `${id}-error`, role: error ? "alert" : null }, error),
    );
  });
  form.replaceChildren(
    h("p", { class: "intro" }, offline ? t("prechat_offline") : t("prechat_intro")),
    ...rows,
    h("p", { class: "error", role: "alert", dataset: { role: "prechat-error" } }, errors._form || ""),
    h("button", { type: "submit", class: "primary" }, t("start")),
  );
}

/** What the visitor typed, and what is wrong with it ({} when nothing): required fields,
 * an email's shape, and out of hours an email or a phone (unless the hub already has one). */
export function readPrechat(form, { t, fields, offline, known }) {
  const values = {};
  const errors = {};
  for (const { name, rule } of fields) {
    const input = form.elements.namedItem(name);
    const value = input ? input.value.trim() : "";
    values[name] = value;
    if (rule === "required" && !value) errors[name] = t("need_field");
    else if (name === "email" && value && !/^[^\s@]+@[^\s@]+$/.test(value)) errors[name] = t("bad_email");
  }
  if (offline && !values.email && !values.phone && !known.email && !known.phone) {
    errors._form = t("need_contact");
  }
  return { values, errors };
}
