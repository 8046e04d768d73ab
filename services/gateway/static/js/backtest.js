// The backtest page: GET /api/backtest for a range of NZ dates, a table and a chart of the strike
// rates with their 95% Wilson intervals (services/writer/backtest.py computes them).

const SVG = "http://www.w3.org/2000/svg";

export function percent(value) {
  return value === null ? "–" : `${(100 * value).toFixed(1)}%`;
}

export function interval(bounds) {
  return `[${percent(bounds[0])}, ${percent(bounds[1])}]`;
}

export function dollars(value, races) {
  return value === null ? "–" : `$${value.toFixed(2)} (n=${races})`;
}

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function renderTable(body, windows) {
  body.replaceChildren();
  for (const w of windows) {
    const row = document.createElement("tr");
    row.dataset.testid = "backtest-row";
    row.dataset.window = String(w.window_minutes);
    const cells = [
      [`last ${w.window_minutes} min`, "window"],
      [String(w.races), "races"],
      [percent(w.win_strike_rate), "win-rate"],
      [interval(w.win_strike_rate_ci), "win-ci"],
      [percent(w.place_strike_rate), "place-rate"],
      [interval(w.place_strike_rate_ci), "place-ci"],
      [dollars(w.win_return, w.win_return_races), "win-return"],
      [dollars(w.place_return, w.place_return_races), "place-return"],
    ];
    for (const [text, field] of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      cell.dataset.field = field;
      row.append(cell);
    }
    body.append(row);
  }
}

// Bars of the win and place strike rates per window, whiskers for their intervals, n under each.
function renderChart(chart, windows) {
  chart.replaceChildren();
  const left = 40, top = 16, height = 220, width = 580;
  const y = (rate) => top + height - rate * height;
  chart.append(svg("line", { class: "axis", x1: left, y1: top + height, x2: left + width, y2: top + height }));
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { class: "axis", x1: left - 4, y1: y(tick), x2: left, y2: y(tick) }));
    chart.append(svg("text", { x: 2, y: y(tick) + 4 }, `${tick * 100}%`));
  }
  const slot = width / Math.max(windows.length, 1);
  windows.forEach((w, index) => {
    const x0 = left + index * slot + slot * 0.2;
    const bar = slot * 0.28;
    const series = [
      ["win", w.win_strike_rate, w.win_strike_rate_ci, x0],
      ["place", w.place_strike_rate, w.place_strike_rate_ci, x0 + bar + 4],
    ];
    for (const [kind, rate, ci, x] of series) {
      if (rate !== null) {
        chart.append(svg("rect", {
          class: `bar-${kind}`, x, y: y(rate), width: bar, height: y(0) - y(rate),
          "data-testid": `bar-${kind}-${w.window_minutes}`, "data-rate": rate,
        }));
        const mid = x + bar / 2;
        chart.append(svg("line", { class: "whisker", x1: mid, y1: y(ci[0]), x2: mid, y2: y(ci[1]) }));
        chart.append(svg("line", { class: "whisker", x1: mid - 5, y1: y(ci[0]), x2: mid + 5, y2: y(ci[0]) }));
        chart.append(svg("line", { class: "whisker", x1: mid - 5, y1: y(ci[1]), x2: mid + 5, y2: y(ci[1]) }));
      }
    }
    chart.append(svg("text", { x: x0, y: top + height + 16 }, `last ${w.window_minutes} min`));
    chart.append(svg("text", { x: x0, y: top + height + 30, "data-testid": `races-${w.window_minutes}` },
      `n=${w.races} races`));
  });
  chart.append(svg("text", { x: left + 4, y: top + height + 48 }, "win (blue), place (green); whiskers: 95% interval"));
}

async function run(form, table, chart, status) {
  const params = new URLSearchParams({ date_from: form.date_from.value, date_to: form.date_to.value });
  status.textContent = "loading…";
  const response = await fetch(`/api/backtest?${params}`, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    status.textContent = body.error || `HTTP ${response.status}`;
    return;
  }
  renderTable(table.tBodies[0], body.windows);
  renderChart(chart, body.windows);
  status.textContent = `${body.date_from} to ${body.date_to}`;
  document.body.dataset.loaded = "true";
}

function nzDate(offsetDays) {
  const day = new Date(Date.now() + offsetDays * 86400000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Pacific/Auckland" }).format(day);
}

function start() {
  const form = document.querySelector('[data-testid="backtest-form"]');
  const table = document.querySelector('[data-testid="backtest-table"]');
  const chart = document.querySelector('[data-testid="backtest-chart"]');
  const status = document.querySelector('[data-testid="backtest-status"]');
  const query = new URLSearchParams(window.location.search);
  form.date_from.value = query.get("date_from") || nzDate(-29);
  form.date_to.value = query.get("date_to") || nzDate(0);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form, table, chart, status);
  });
  run(form, table, chart, status);
}

start();
