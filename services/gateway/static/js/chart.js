// The race chart (issue 14): each running runner's Win share and win price over the timeline the race
// view already loads (its columns: 60 minutes before the start to the last post-start column), as two
// small SVG panels with a shared legend. Drawn here, no library: one <path data-series="N"> per runner
// per panel with one vertex per timeline column that has a value, and a <circle> per vertex whose
// <title> gives the value on hover.

import { el } from "./format.js";
import { timelineColumns, winPrice } from "./indicators.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 230;
const MARGIN = { top: 12, right: 14, bottom: 26, left: 44 };
// Distinct colours for up to 24 runners (then they repeat), readable on the light background.
const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#393b79", "#ad494a", "#637939", "#e6550d", "#7b4173", "#3182bd", "#31a354",
  "#756bb1", "#636363", "#b5cf6b", "#d6616b", "#6baed6", "#fd8d3c", "#843c39", "#de9ed6",
];
const PRICE_TICKS = [1.1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7, 10, 15, 20, 30, 50, 100, 200, 500, 1000];
const MAX_TICKS = 7;

export function seriesColour(runnerNumber) {
  return PALETTE[(Math.max(1, runnerNumber) - 1) % PALETTE.length];
}

// Per running runner: its share (%) and price points, one per column with a value, earliest first.
export function chartSeries(entrants, timeline) {
  const columns = timelineColumns(timeline.intervals());
  return entrants
    .filter((entrant) => !entrant.is_scratched)
    .map((entrant) => {
      const share = [];
      const price = [];
      for (const column of columns) {
        const doc = timeline.cell(entrant.entrant_id, column);
        if (!doc) continue;
        if (doc.win_pool_percentage !== null && doc.win_pool_percentage !== undefined) {
          share.push({ interval: column, value: doc.win_pool_percentage });
        }
        const odds = winPrice(doc);
        if (odds !== null && odds > 0) price.push({ interval: column, value: odds });
      }
      return { entrant, share, price };
    });
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A share axis up to a round number above the largest share.
function shareScale(maximum) {
  const top = [5, 10, 20, 25, 40, 50, 75, 100].find((value) => value >= maximum * 1.05) ?? 100;
  const step = top <= 10 ? 2 : top <= 25 ? 5 : top <= 50 ? 10 : 25;
  const ticks = [];
  for (let value = 0; value <= top + 1e-9; value += step) ticks.push(value);
  return { map: (value) => value / top, ticks, label: (value) => `${value}%` };
}

// Prices on a log axis, so favourites and outsiders are both readable.
function priceScale(minimum, maximum) {
  const low = Math.log(Math.max(1.01, minimum / 1.1));
  const high = Math.log(Math.max(minimum * 1.5, maximum * 1.1));
  let ticks = PRICE_TICKS.filter((value) => Math.log(value) >= low && Math.log(value) <= high);
  // A wide range keeps every other tick, so the labels stay apart.
  while (ticks.length > MAX_TICKS) ticks = ticks.filter((_, index) => index % 2 === 0);
  return {
    map: (value) => (Math.log(value) - low) / (high - low),
    ticks,
    label: (value) => `$${value}`,
  };
}

export class RaceChart {
  constructor(root) {
    this.root = root;
    this.highlighted = null;
  }

  render({ entrants, timeline }) {
    const series = chartSeries(entrants, timeline);
    const columns = timelineColumns(timeline.intervals());
    const withData = series.filter((item) => item.share.length || item.price.length);
    this.root.dataset.series = String(series.length);
    if (!withData.length) {
      this.root.replaceChildren(
        el("h2", {}, "Win share and price"),
        el("p", { class: "muted", "data-testid": "chart-empty" }, "No timeline data yet."),
      );
      return;
    }
    const first = columns[0];
    const last = columns[columns.length - 1];
    const x = (interval) => MARGIN.left + ((first - interval) / (first - last)) * (WIDTH - MARGIN.left - MARGIN.right);
    const shares = series.flatMap((item) => item.share.map((point) => point.value));
    const prices = series.flatMap((item) => item.price.map((point) => point.value));
    const panels = [
      this.panel("share", "Win share", series, "share", x, columns, shareScale(Math.max(1, ...shares)),
        (value) => `${value.toFixed(1)}%`),
      prices.length
        ? this.panel("price", "Win price", series, "price", x, columns,
          priceScale(Math.min(...prices), Math.max(...prices)), (value) => `$${value.toFixed(2)}`)
        : null,
    ].filter(Boolean);
    const legend = el("div", { class: "chart-legend", "data-testid": "chart-legend" },
      ...series.map(({ entrant }) => {
        const item = el("span", { class: "legend-item", "data-testid": "legend-item", "data-series": entrant.runner_number,
          title: entrant.name },
        el("span", { class: "legend-swatch" }), String(entrant.runner_number));
        item.querySelector(".legend-swatch").style.backgroundColor = seriesColour(entrant.runner_number);
        item.addEventListener("mouseenter", () => this.highlight(entrant.runner_number));
        item.addEventListener("mouseleave", () => this.highlight(null));
        return item;
      }));
    this.root.replaceChildren(
      el("h2", {}, "Win share and price ", el("span", { class: "muted" }, "by minutes to the start")),
      el("div", { class: "chart-panels" }, ...panels),
      legend,
    );
    this.highlight(this.highlighted);
  }

  panel(name, title, series, key, x, columns, scale, format) {
    const plotTop = MARGIN.top;
    const plotBottom = HEIGHT - MARGIN.bottom;
    const y = (value) => plotBottom - Math.min(1, Math.max(0, scale.map(value))) * (plotBottom - plotTop);
    const grid = svg("g", { class: "chart-grid" });
    for (const tick of scale.ticks) {
      const position = y(tick).toFixed(1);
      grid.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: position, y2: position }));
      grid.append(svg("text", { x: MARGIN.left - 6, y: position, "text-anchor": "end", "dominant-baseline": "middle" },
        scale.label(tick)));
    }
    const marks = [60, 45, 30, 15, 5, 0].filter((value) => columns.includes(value));
    const lowest = columns[columns.length - 1];
    if (lowest < 0) marks.push(lowest);
    for (const mark of marks) {
      grid.append(svg("text", { x: x(mark).toFixed(1), y: HEIGHT - 8, "text-anchor": "middle" }, String(mark)));
    }
    const lines = svg("g", { class: "chart-lines" });
    for (const { entrant, [key]: points } of series) {
      const colour = seriesColour(entrant.runner_number);
      const d = points
        .map((point, index) => `${index ? "L" : "M"}${x(point.interval).toFixed(1)} ${y(point.value).toFixed(1)}`)
        .join(" ");
      lines.append(svg("path", {
        d: d || null, "data-series": entrant.runner_number, "data-entrant-id": entrant.entrant_id,
        "data-points": points.length, stroke: colour, fill: "none", class: "chart-line",
      }));
      for (const point of points) {
        lines.append(svg("circle", {
          cx: x(point.interval).toFixed(1), cy: y(point.value).toFixed(1), r: 2.5, fill: colour,
          "data-series": entrant.runner_number, "data-interval": point.interval, class: "chart-point",
        }, svg("title", {}, `${entrant.runner_number}. ${entrant.name} · ${point.interval} min: ${format(point.value)}`)));
      }
    }
    return el("figure", { class: "chart-panel" },
      el("figcaption", {}, title),
      svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, "data-panel": name, "data-testid": `chart-${name}`, role: "img",
        "aria-label": `${title} of each runner by minutes to the start` }, grid, lines));
  }

  highlight(runnerNumber) {
    this.highlighted = runnerNumber;
    for (const node of this.root.querySelectorAll("[data-series]")) {
      const dim = runnerNumber !== null && node.dataset.series !== String(runnerNumber);
      node.classList.toggle("dim", dim);
    }
  }
}
