// /reports: the head of sales' reports over a period, each as a table (readable as it is)
// and an SVG chart, with CSV and XLSX exports of the same query.

import { get, query } from "./api.js";
import { barChart, formatNumber, formatShare, funnelChart, heatMap, paretoChart } from "./charts.js";
import { funnels } from "./contact.js";
import { channelLabel, fill, h, localName, t, tabButtons, untrusted, untrustedString } from "./dom.js";

const VIEWS = ["activity", "funnel", "sources", "abc_xyz", "calls"];
const PATHS = { activity: "activity", funnel: "funnel", sources: "sources", abc_xyz: "abc-xyz", calls: "calls" };
const ANSWER_WITHIN = ["10", "20", "30", "60"];
const CHANNELS = ["telegram", "email", "phone", "site_chat", "form", "ad_lead", "api"];
const DIMENSIONS = ["channel", "utm_source", "utm_campaign", "source"];
const NONE = "(none)";

const pad = (n) => String(n).padStart(2, "0");
const iso = (day) => `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`;
const money = (value) => formatNumber(value);
const minutes = (value) => (value === null || value === undefined ? "—" : String(value));
const seconds = (value) => {
  if (value === null || value === undefined) return "—";
  const total = Math.round(Number(value) || 0);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
};

/** A table with a `data-col` on every cell, so a row reads by column name. */
function table(id, columns, rows, rowData = () => ({})) {
  return h(
    "table",
    { class: "report-table", id },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h(
      "tbody",
      {},
      rows.length
        ? rows.map((row, index) =>
            h(
              "tr",
              { dataset: rowData(row, index) },
              columns.map((c) => h("td", { class: c.num ? "num" : null, dataset: { col: c.key } }, c.cell(row))),
            ),
          )
        : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, t("reports.empty"))),
    ),
  );
}

const col = (key, label, cell, num = true) => ({ key, label, cell, num });

function section(title, ...body) {
  return h("section", { class: "report-section" }, title ? h("h2", {}, title) : null, ...body);
}

export async function start({ me, root }) {
  const params = new URLSearchParams(location.search);
  const today = new Date();
  const state = {
    view: VIEWS.includes(params.get("report")) ? params.get("report") : "activity",
    from: params.get("from") || iso(new Date(today.getFullYear(), today.getMonth(), 1)),
    to: params.get("to") || iso(today),
    team: params.get("team") || "",
    manager_id: params.get("manager_id") || "",
    funnel: params.get("funnel") || "",
    channel: params.get("channel") || "",
    model: params.get("model") === "last" ? "last" : "first",
    dimension: DIMENSIONS.includes(params.get("dimension")) ? params.get("dimension") : "channel",
    by: params.get("by") === "product" ? "product" : "client",
    months: params.get("months") || "6",
    answer_within: ANSWER_WITHIN.includes(params.get("answer_within")) ? params.get("answer_within") : "20",
  };
  const sees = me.role === "head" || me.role === "admin";
  const [allFunnels, teams, managers] = await Promise.all([
    funnels(),
    sees ? get("/api/v1/teams").then((d) => d.items || []).catch(() => []) : [],
    get("/api/v1/managers").then((d) => d.items || []).catch(() => []),
  ]);
  const managerName = new Map(managers.map((m) => [m.id, m.name]));
  const funnelName = new Map(allFunnels.map((f) => [f.code, localName(f)]));

  const error = h("p", { class: "error", role: "alert", id: "report-error" });
  const dateInput = (id, key) =>
    h("input", {
      type: "date",
      id,
      value: state[key],
      required: true,
      onchange: (event) => {
        if (!event.target.value) return;
        state[key] = event.target.value;
        load();
      },
    });
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
  const filters = h(
    "div",
    { class: "toolbar report-filters" },
    h("h1", {}, t("nav.reports")),
    h("label", { class: "field" }, h("span", {}, t("reports.from")), dateInput("report-from", "from")),
    h("label", { class: "field" }, h("span", {}, t("reports.to")), dateInput("report-to", "to")),
    sees
      ? select("report-team", "team", t("reports.team"), [["", t("reports.all")], ...teams.map((team) => [team.name, untrustedString(team.name)])])
      : null,
    sees
      ? select("report-manager", "manager_id", t("reports.manager"), [
          ["", t("reports.all")],
          ...managers.map((m) => [String(m.id), untrustedString(m.name)]),
        ])
      : null,
    select("report-funnel", "funnel", t("reports.funnel"), [["", t("reports.all")], ...allFunnels.map((f) => [f.code, localName(f)])]),
    select("report-channel", "channel", t("reports.channel"), [["", t("reports.all")], ...CHANNELS.map((c) => [c, channelLabel(c)])]),
  );
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": t("reports.which") });
  const options = h("div", { class: "toolbar report-options" });
  const body = h("div", { class: "report-body", id: "report", "aria-live": "polite" });
  fill(root, h("div", { class: "reports-page" }, filters, tabs, error, options, body));
  root.classList.add("one-pane");

  const drawTabs = () =>
    fill(
      tabs,
      tabButtons(VIEWS, state.view, {
        idPrefix: "report-tab",
        labelPrefix: "reports.tab",
        onpick: (view) => {
          state.view = view;
          load();
        },
      }),
    );

  function reportQuery(extra = {}) {
    const wanted = {
      from: state.from,
      to: state.to,
      team: state.team,
      manager_id: state.manager_id,
      funnel: state.funnel,
      channel: state.channel,
    };
    if (state.view === "abc_xyz") Object.assign(wanted, { by: state.by, months: state.months });
    if (state.view === "calls") Object.assign(wanted, { answer_within: state.answer_within });
    return query({ ...wanted, ...extra });
  }

  function exportLinks() {
    const path = `/api/v1/reports/${PATHS[state.view]}`;
    return h(
      "div",
      { class: "exports" },
      h("a", { class: "button", id: "export-csv", href: `${path}${reportQuery({ format: "csv" })}`, download: "" }, t("reports.export_csv")),
      h("a", { class: "button", id: "export-xlsx", href: `${path}${reportQuery({ format: "xlsx" })}`, download: "" }, t("reports.export_xlsx")),
    );
  }

  function optionControls() {
    const pick = (id, key, label, choices) =>
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
          choices.map(([value, text]) => h("option", { value, selected: state[key] === value }, text)),
        ),
      );
    if (state.view === "sources") {
      return [
        h(
          "div",
          { class: "segmented", role: "group", "aria-label": t("reports.model") },
          ["first", "last"].map((model) =>
            h(
              "button",
              {
                type: "button",
                id: `touch-${model}`,
                "aria-pressed": String(state.model === model),
                onclick: () => {
                  state.model = model;
                  load();
                },
              },
              t(`reports.model.${model}`),
            ),
          ),
        ),
        pick("report-dimension", "dimension", t("reports.dimension"), DIMENSIONS.map((d) => [d, t(`reports.dimension.${d}`)])),
      ];
    }
    if (state.view === "abc_xyz") {
      return [
        pick("report-by", "by", t("reports.by"), [
          ["client", t("reports.by.client")],
          ["product", t("reports.by.product")],
        ]),
        pick("report-months", "months", t("reports.months"), ["3", "6", "12"].map((m) => [m, m])),
      ];
    }
    if (state.view === "calls") {
      return [
        pick(
          "report-answer-within",
          "answer_within",
          t("reports.answer_within"),
          ANSWER_WITHIN.map((n) => [n, t("reports.seconds", { n })]),
        ),
      ];
    }
    return [];
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    const shown = {
      report: state.view === "activity" ? "" : state.view,
      from: state.from,
      to: state.to,
      team: state.team,
      manager_id: state.manager_id,
      funnel: state.funnel,
      channel: state.channel,
    };
    if (state.view === "sources") Object.assign(shown, { model: state.model, dimension: state.dimension });
    if (state.view === "abc_xyz") Object.assign(shown, { by: state.by, months: state.months });
    if (state.view === "calls") Object.assign(shown, { answer_within: state.answer_within });
    history.replaceState(null, "", `/reports${query(shown)}`);
    drawTabs();
    fill(options, optionControls(), h("div", { class: "spacer" }), exportLinks());
    error.textContent = "";
    body.setAttribute("aria-busy", "true");
    let report;
    try {
      report = await get(`/api/v1/reports/${PATHS[state.view]}${reportQuery()}`);
    } catch (failure) {
      if (mine !== seq) return;
      error.textContent = t("error.generic", { message: failure.message });
      fill(body);
      body.removeAttribute("aria-busy");
      return;
    }
    if (mine !== seq) return;
    const draw = { activity: drawActivity, funnel: drawFunnel, sources: drawSources, abc_xyz: drawAbcXyz, calls: drawCalls }[state.view];
    fill(body, draw(report));
    body.dataset.view = state.view;
    body.dataset.from = report.period ? report.period.from : state.from;
    body.dataset.to = report.period ? report.period.to : state.to;
    body.removeAttribute("aria-busy");
  }

  const who = (row) => (row.manager_id ? row.manager || managerName.get(row.manager_id) : null);

  function drawActivity(report) {
    const rows = report.managers || [];
    const label = (row) => untrusted(who(row), t("inbox.unassigned"));
    const columns = [
      col("manager", t("reports.col.manager"), label, false),
      col("conversations_received", t("reports.col.received"), (r) => formatNumber(r.conversations_received)),
      col("conversations_answered", t("reports.col.answered"), (r) => formatNumber(r.conversations_answered)),
      col("frt_work_median", t("reports.col.frt_work_median"), (r) => minutes(r.first_response_work_minutes.median)),
      col("frt_work_p90", t("reports.col.frt_work_p90"), (r) => minutes(r.first_response_work_minutes.p90)),
      col("frt_clock_median", t("reports.col.frt_clock_median"), (r) => minutes(r.first_response_clock_minutes.median)),
      col("replies", t("reports.col.replies"), (r) => formatNumber(Object.values(r.replies_by_channel || {}).reduce((a, b) => a + b, 0))),
      col("calls", t("reports.col.calls"), (r) => `${r.calls_in} / ${r.calls_out} / ${r.calls_missed}`),
      col("callbacks", t("reports.col.callbacks"), (r) => `${r.callbacks_within_sla} / ${r.callbacks}`),
      col("tasks_done", t("reports.col.tasks_done"), (r) => formatNumber(r.tasks_done)),
      col("tasks_overdue", t("reports.col.tasks_overdue"), (r) => formatNumber(r.tasks_overdue)),
      col("deals_won", t("reports.col.won"), (r) => formatNumber(r.deals_won)),
      col("won_amount", t("reports.col.won_amount"), (r) => money(r.won_amount)),
      col("deals_lost", t("reports.col.lost"), (r) => formatNumber(r.deals_lost)),
      col("lost_amount", t("reports.col.lost_amount"), (r) => money(r.lost_amount)),
    ];
    const chart = barChart({
      label: t("reports.chart.activity"),
      categories: rows.map((row) => ({ label: untrustedString(who(row), t("inbox.unassigned")) })),
      series: [
        { key: "received", label: t("reports.col.received"), values: rows.map((r) => r.conversations_received) },
        { key: "answered", label: t("reports.col.answered"), values: rows.map((r) => r.conversations_answered) },
        { key: "won", label: t("reports.col.won"), values: rows.map((r) => r.deals_won) },
      ],
    });
    return [
      section(null, h("div", { class: "chart-box", id: "chart-activity" }, chart)),
      section(
        null,
        h("div", { class: "table-box" }, table("table-activity", columns, rows, (row) => ({ managerId: row.manager_id ?? "none" }))),
        h("p", { class: "muted small" }, t("reports.activity_note")),
      ),
    ];
  }

  function drawCalls(report) {
    const rows = report.managers || [];
    const within = report.answer_within_seconds;
    const columns = [
      col("manager", t("reports.col.manager"), (r) => untrusted(who(r), t("inbox.unassigned")), false),
      col("calls_in", t("reports.col.calls_in"), (r) => formatNumber(r.calls_in)),
      col("calls_out", t("reports.col.calls_out"), (r) => `${formatNumber(r.calls_out)} (${formatNumber(r.calls_out_answered)})`),
      col("calls_missed", t("reports.col.calls_missed"), (r) => formatNumber(r.calls_missed)),
      col("answered_within", t("reports.col.answered_within", { n: within }), (r) => formatNumber(r.answered_within)),
      col("answered_within_share", t("reports.col.answered_within_share"), (r) => formatShare(r.answered_within_share)),
      col("talk", t("reports.col.talk"), (r) => seconds(r.talk_seconds)),
      col("average_talk", t("reports.col.average_talk"), (r) => seconds(r.average_talk_seconds)),
      col("callbacks", t("reports.col.callbacks"), (r) => `${r.callbacks_within_sla} / ${r.callbacks}`),
      col("callbacks_share", t("reports.col.callbacks_share"), (r) => formatShare(r.callbacks_within_sla_share)),
    ];
    const chart = barChart({
      label: t("reports.chart.calls"),
      categories: rows.map((row) => ({ label: untrustedString(who(row), t("inbox.unassigned")) })),
      series: [
        { key: "in", label: t("reports.col.calls_in"), values: rows.map((r) => r.calls_in) },
        { key: "out", label: t("reports.series.calls_out"), values: rows.map((r) => r.calls_out) },
        { key: "missed", label: t("reports.col.calls_missed"), values: rows.map((r) => r.calls_missed) },
      ],
    });
    return [
      section(null, h("div", { class: "chart-box", id: "chart-calls" }, chart)),
      section(
        null,
        h("div", { class: "table-box" }, table("table-calls", columns, rows, (row) => ({ managerId: row.manager_id ?? "none" }))),
        h("p", { class: "muted small" }, t("reports.calls_note")),
      ),
    ];
  }

  function drawFunnel(report) {
    const shown = (report.funnels || []).filter(
      (f) => state.funnel || f.cohort || f.won || f.lost || f.stages.some((s) => s.moved_in),
    );
    if (!shown.length) return [h("p", { class: "muted empty" }, t("reports.empty"))];
    return shown.map((f) => {
      const name = funnelName.get(f.code) || f.code;
      const stageName = (s) => localName(s) || s.code;
      const columns = [
        col("stage", t("reports.col.stage"), stageName, false),
        col("reached", t("reports.col.reached"), (s) => formatNumber(s.reached)),
        col("moved_in", t("reports.col.moved_in"), (s) => formatNumber(s.moved_in)),
        col("conversion", t("reports.col.conversion"), (s) => formatShare(s.conversion_to_next)),
        col("median_hours", t("reports.col.median_hours"), (s) => minutes(s.median_hours_in_stage)),
      ];
      const reasons = f.lost_reasons || [];
      return h(
        "section",
        { class: "report-section funnel-report", dataset: { funnel: f.code } },
        h("h2", {}, name),
        h(
          "p",
          { class: "summary" },
          t("reports.funnel_summary", {
            cohort: formatNumber(f.cohort),
            won: formatNumber(f.won),
            lost: formatNumber(f.lost),
            rate: formatShare(f.win_rate),
          }),
        ),
        h(
          "div",
          { class: "chart-box" },
          funnelChart({
            label: t("reports.chart.funnel", { funnel: name }),
            stages: f.stages.map((s) => ({ code: s.code, kind: s.kind, label: stageName(s), reached: s.reached, conversion: s.conversion_to_next })),
          }),
        ),
        h("div", { class: "table-box" }, table(`table-funnel-${f.code}`, columns, f.stages, (s) => ({ stage: s.code }))),
        reasons.length
          ? h(
              "div",
              { class: "lost-reasons" },
              h("h3", {}, t("reports.lost_reasons")),
              h(
                "ul",
                { class: "plain" },
                reasons.map((r) => h("li", {}, untrusted(r.reason, "—"), ` · ${formatNumber(r.count)}`)),
              ),
            )
          : null,
      );
    });
  }

  function sourceLabel(value) {
    if (value === NONE) return t("reports.none");
    return state.dimension === "channel" ? channelLabel(value) : value;
  }

  function drawSources(report) {
    const rows = (report[state.model] || {})[state.dimension] || [];
    const columns = [
      col("value", t(`reports.dimension.${state.dimension}`), (r) => (r.value === NONE || state.dimension === "channel" ? sourceLabel(r.value) : untrusted(r.value)), false),
      col("leads", t("reports.col.leads"), (r) => formatNumber(r.leads)),
      col("deals", t("reports.col.deals"), (r) => formatNumber(r.deals)),
      col("won", t("reports.col.won"), (r) => formatNumber(r.won)),
      col("revenue", t("reports.col.revenue"), (r) => money(r.revenue)),
    ];
    const chart = barChart({
      label: t("reports.chart.sources", { model: t(`reports.model.${state.model}`) }),
      categories: rows.map((r) => ({ label: r.value === NONE || state.dimension === "channel" ? sourceLabel(r.value) : untrustedString(r.value) })),
      series: [
        { key: "revenue", label: t("reports.col.revenue"), values: rows.map((r) => Number(r.revenue)), format: money },
        { key: "leads", label: t("reports.col.leads"), values: rows.map((r) => r.leads) },
      ],
      shared: false,
    });
    return [
      section(null, h("div", { class: "chart-box", id: "chart-sources" }, chart)),
      section(null, h("div", { class: "table-box" }, table("table-sources", columns, rows, (r) => ({ value: r.value })))),
    ];
  }

  function drawAbcXyz(report) {
    const items = report.items || [];
    const byClient = report.by === "client";
    const nameOf = (item) =>
      byClient
        ? h("a", { href: `/contacts/${Number(item.key)}` }, untrusted(item.name, t("contact.unnamed")))
        : item.key === NONE
          ? t("reports.none")
          : untrusted(item.name || item.key);
    const plainName = (item) => (byClient ? untrustedString(item.name, t("contact.unnamed")) : item.key === NONE ? t("reports.none") : untrustedString(item.key));
    const months = report.months || [];
    const columns = [
      col("rank", "#", (i) => String(i.rank)),
      col("name", t(byClient ? "reports.by.client" : "reports.by.product"), nameOf, false),
      col("revenue", t("reports.col.revenue"), (i) => money(i.revenue)),
      col("share", t("reports.col.cumulative"), (i) => formatShare(i.cumulative_share)),
      col("abc", "ABC", (i) => i.abc || "—", false),
      col("xyz", "XYZ", (i) => i.xyz || "—", false),
      col("cv", t("reports.col.cv"), (i) => (i.cv === null || i.cv === undefined ? "—" : String(i.cv))),
      col("note", t("reports.col.xyz_note"), (i) => i.xyz_note || "", false),
      ...months.map((m) => col(`m-${m}`, m, (i) => money(i.monthly[m]))),
    ];
    const thresholds = report.thresholds || { a: 0.8, b: 0.95 };
    const pareto = paretoChart({
      label: t("reports.chart.pareto"),
      axisLabel: t("reports.rank"),
      guides: [thresholds.a, thresholds.b],
      items: items.map((i) => ({ rank: i.rank, share: i.cumulative_share, abc: i.abc, label: plainName(i) })),
    });
    const names = new Map(items.map((i) => [String(i.key), i]));
    const listBox = h("div", { class: "cell-list", id: "abc-cell-list", "aria-live": "polite" }, h("p", { class: "muted small" }, t("reports.pick_cell")));
    const classLabel = (key) => (key === "-" ? "—" : key);
    const matrix = report.matrix || {};
    // The classes, and the "—" row and column (no class) only when someone is in them.
    const used = (cells) => cells.some((cell) => cell && cell.count > 0);
    const rowKeys = ["A", "B", "C", "-"].filter((k) => matrix[k] && (k !== "-" || used(Object.values(matrix[k]))));
    const colKeys = ["X", "Y", "Z", "-"].filter((k) => k !== "-" || used(rowKeys.map((r) => matrix[r][k])));
    const cells = {};
    for (const r of rowKeys) {
      cells[r] = {};
      for (const c of colKeys) {
        const cell = matrix[r][c] || { count: 0, revenue: "0", keys: [] };
        cells[r][c] = { value: Number(cell.revenue) || 0, lines: [t("reports.cell_count", { count: cell.count }), money(cell.revenue)] };
      }
    }
    const heat = heatMap({
      label: t("reports.chart.matrix"),
      rows: rowKeys.map((k) => ({ key: k, label: classLabel(k) })),
      columns: colKeys.map((k) => ({ key: k, label: classLabel(k) })),
      cells,
      onpick: (r, c) => {
        const keys = (matrix[r][c] || { keys: [] }).keys;
        fill(
          listBox,
          h("h3", {}, t("reports.cell_title", { cell: `${classLabel(r)} / ${classLabel(c)}`, count: keys.length })),
          keys.length
            ? h(
                "ul",
                { class: "plain", dataset: { abc: r, xyz: c } },
                keys.map((key) => {
                  const item = names.get(String(key)) || { key, name: null, revenue: "0" };
                  return h("li", {}, nameOf(item), h("span", { class: "muted" }, ` · ${money(item.revenue)}`));
                }),
              )
            : h("p", { class: "muted" }, t("reports.empty")),
        );
      },
    });
    return [
      h(
        "div",
        { class: "chart-row" },
        section(t("reports.chart.pareto"), h("div", { class: "chart-box", id: "chart-pareto" }, pareto)),
        section(t("reports.chart.matrix"), h("div", { class: "chart-box", id: "chart-matrix" }, heat), listBox),
      ),
      section(
        null,
        h("p", { class: "summary" }, t("reports.total_revenue", { total: money(report.total_revenue) })),
        h("div", { class: "table-box" }, table("table-abc", columns, items, (i) => ({ key: i.key }))),
      ),
    ];
  }

  await load();
}
