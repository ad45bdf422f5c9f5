// Small SVG charts for the reports, built with createElementNS: no chart library, no
// inline style (colours come from app.css classes; shading is the fill-opacity attribute).
// Labels may be client text (a UTM tag, a client's name): they go in as textContent.

import { LOCALE } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const numbers = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const percents = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });

export const formatNumber = (value) => numbers.format(Number(value) || 0);
export const formatShare = (value) => (value === null || value === undefined ? "—" : percents.format(Number(value)));

/** s("rect", {x: 1, class: "bar"}, child...): an SVG element; strings become text nodes. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function frame(width, height, label, cls) {
  return s(
    "svg",
    { class: `chart ${cls}`, viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label },
    s("title", {}, label),
  );
}

const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/**
 * Horizontal grouped bars: one group per category, one bar per series.
 * `categories`: [{label}], `series`: [{key, label, values: [number], format}];
 * `shared`: one scale for all series (counts), else each series on its own scale.
 */
export function barChart({ label, categories, series, shared = true, cls = "bars" }) {
  const labelWidth = 170;
  const plot = 420;
  const valueWidth = 110;
  const bar = 14;
  const group = series.length * (bar + 3) + 12;
  const legend = 24;
  const height = legend + Math.max(1, categories.length) * group + 4;
  const svg = frame(labelWidth + plot + valueWidth, height, label, cls);
  const maxOf = (values) => Math.max(0, ...values.map((v) => Number(v) || 0));
  const sharedMax = maxOf(series.flatMap((one) => one.values));
  let legendX = labelWidth;
  series.forEach((one, index) => {
    svg.append(
      s("rect", { x: legendX, y: 6, width: 10, height: 10, class: `swatch series-${index}` }),
      s("text", { x: legendX + 14, y: 15, class: "legend" }, one.label),
    );
    legendX += 14 + one.label.length * 7.5 + 18; // about 7 px a character at 12 px
  });
  categories.forEach((category, row) => {
    const top = legend + row * group;
    const text = category.label;
    svg.append(
      s(
        "text",
        { x: labelWidth - 8, y: top + group / 2, class: "axis-label", "text-anchor": "end", "dominant-baseline": "middle" },
        s("title", {}, text),
        clip(text, 24),
      ),
    );
    series.forEach((one, index) => {
      const value = Number(one.values[row]) || 0;
      const max = shared ? sharedMax : maxOf(one.values);
      const width = max > 0 ? Math.max(value > 0 ? 2 : 0, (value / max) * plot) : 0;
      const y = top + 6 + index * (bar + 3);
      const shown = one.format ? one.format(value) : formatNumber(value);
      svg.append(
        s(
          "rect",
          { x: labelWidth, y, width: width.toFixed(1), height: bar, class: `bar series-${index}`, dataset: { series: one.key, row } },
          s("title", {}, `${text} · ${one.label}: ${shown}`),
        ),
        s("text", { x: labelWidth + width + 4, y: y + bar - 3, class: "value" }, shown),
      );
    });
  });
  return svg;
}

/** A funnel: one centred bar per stage, its width the deals that reached it. */
export function funnelChart({ label, stages }) {
  const width = 700;
  const row = 30;
  const labelWidth = 190;
  const plot = width - labelWidth - 150;
  const svg = frame(width, Math.max(1, stages.length) * row + 8, label, "funnel");
  const max = Math.max(0, ...stages.map((stage) => stage.reached));
  stages.forEach((stage, index) => {
    const y = 4 + index * row;
    const size = max > 0 ? Math.max(stage.reached > 0 ? 2 : 0, (stage.reached / max) * plot) : 0;
    const x = labelWidth + (plot - size) / 2;
    const text = `${formatNumber(stage.reached)}${stage.conversion === null || stage.conversion === undefined ? "" : ` · ${formatShare(stage.conversion)} →`}`;
    svg.append(
      s("text", { x: labelWidth - 8, y: y + row / 2, class: "axis-label", "text-anchor": "end", "dominant-baseline": "middle" }, clip(stage.label, 28)),
      s(
        "rect",
        { x: x.toFixed(1), y, width: size.toFixed(1), height: row - 6, rx: 3, class: `bar stage kind-${stage.kind}`, dataset: { stage: stage.code } },
        s("title", {}, `${stage.label}: ${text}`),
      ),
      s("text", { x: labelWidth + plot + 8, y: y + row / 2, class: "value", "dominant-baseline": "middle" }, text),
    );
  });
  return svg;
}

/** The Pareto curve: the cumulative share of revenue over the rank, with guides. */
export function paretoChart({ label, items, guides, axisLabel }) {
  const width = 520;
  const height = 260;
  const pad = { left: 44, right: 16, top: 12, bottom: 30 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const svg = frame(width, height, label, "pareto");
  const n = items.length;
  const xOf = (rank) => pad.left + (n ? (rank / n) * plotW : 0);
  const yOf = (share) => pad.top + (1 - share) * plotH;
  svg.append(
    s("line", { x1: pad.left, y1: yOf(0), x2: pad.left + plotW, y2: yOf(0), class: "axis" }),
    s("line", { x1: pad.left, y1: yOf(0), x2: pad.left, y2: yOf(1), class: "axis" }),
    s("text", { x: pad.left + plotW / 2, y: height - 6, class: "axis-label", "text-anchor": "middle" }, axisLabel),
  );
  for (const share of [0, 0.5, 1]) {
    svg.append(s("text", { x: pad.left - 6, y: yOf(share) + 4, class: "axis-label", "text-anchor": "end" }, formatShare(share)));
  }
  for (const share of guides) {
    svg.append(
      s("line", { x1: pad.left, y1: yOf(share), x2: pad.left + plotW, y2: yOf(share), class: "guide", dataset: { share } }),
      s("text", { x: pad.left + 4, y: yOf(share) - 3, class: "guide-label" }, formatShare(share)),
    );
  }
  const points = [[xOf(0), yOf(0)], ...items.map((item) => [xOf(item.rank), yOf(item.share)])];
  svg.append(s("polyline", { points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), class: "curve" }));
  for (const item of items) {
    svg.append(
      s(
        "circle",
        { cx: xOf(item.rank).toFixed(1), cy: yOf(item.share).toFixed(1), r: 4, class: `point abc-${item.abc || "none"}`, dataset: { rank: item.rank } },
        s("title", {}, `${item.rank}. ${item.label}: ${formatShare(item.share)} (${item.abc || "—"})`),
      ),
    );
  }
  return svg;
}

/**
 * A heat map: `rows` x `columns` cells shaded by `cells[row][column].value` (0..max), each
 * showing its lines of text; `onpick(row, column)` on a click or Enter/Space.
 */
export function heatMap({ label, rows, columns, cells, onpick }) {
  const cellW = 130;
  const cellH = 56;
  const head = 26;
  const svg = frame(head + columns.length * cellW + 2, head + rows.length * cellH + 2, label, "heat");
  const max = Math.max(0, ...rows.flatMap((r) => columns.map((c) => cells[r.key][c.key].value)));
  columns.forEach((column, index) => {
    svg.append(s("text", { x: head + index * cellW + cellW / 2, y: 17, class: "axis-label", "text-anchor": "middle" }, column.label));
  });
  rows.forEach((row, r) => {
    const y = head + r * cellH;
    svg.append(s("text", { x: 13, y: y + cellH / 2 + 4, class: "axis-label", "text-anchor": "middle" }, row.label));
    columns.forEach((column, c) => {
      const cell = cells[row.key][column.key];
      const x = head + c * cellW;
      const pick = () => onpick(row.key, column.key);
      const shade = max > 0 ? 0.08 + 0.82 * (cell.value / max) : 0.04;
      svg.append(
        s(
          "g",
          {
            class: "cell",
            role: "button",
            tabindex: 0,
            "aria-label": `${row.label}${column.label}: ${cell.lines.join(", ")}`,
            dataset: { abc: row.key, xyz: column.key },
            onclick: pick,
            onkeydown: (event) => {
              if (event.key === "Enter" || event.key === " ") {
                event.preventDefault();
                pick();
              }
            },
          },
          s("rect", { x: x + 1, y: y + 1, width: cellW - 2, height: cellH - 2, class: "cell-bg" }),
          s("rect", { x: x + 1, y: y + 1, width: cellW - 2, height: cellH - 2, class: "cell-fill", "fill-opacity": shade.toFixed(3) }),
          s("text", { x: x + cellW / 2, y: y + 22, class: `cell-text${shade > 0.55 ? " dark" : ""}`, "text-anchor": "middle" }, cell.lines[0]),
          s("text", { x: x + cellW / 2, y: y + 40, class: `cell-text small${shade > 0.55 ? " dark" : ""}`, "text-anchor": "middle" }, cell.lines[1] || ""),
        ),
      );
    });
  });
  return svg;
}
