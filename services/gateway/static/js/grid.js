// The entrants grid: runner columns, timeline columns 60…0 (and post-start), pool and share.

import { centsToDollars, dollars, el, nzTime, odds, percent, toMs } from "./format.js";
import {
  bucketOf,
  minutesToStart,
  moneyIndicatorValues,
  oddsIndicatorValues,
  pickIndicator,
  rangeLabel,
  timelineColumns,
  winPrice,
} from "./indicators.js";

const wholeNumber = new Intl.NumberFormat("en-NZ", { maximumFractionDigits: 0 });

function incrementText(cents, isBaseline) {
  if (cents === null || cents === undefined || cents <= 0) return null;
  const value = wholeNumber.format(centsToDollars(cents));
  return isBaseline ? `$${value}` : `+$${value}`;
}

export class EntrantsGrid {
  constructor(table) {
    this.table = table;
    this.thead = table.querySelector("thead");
    this.tbody = table.querySelector("tbody");
    this.tfoot = table.querySelector("tfoot") || table.appendChild(document.createElement("tfoot"));
    this.previousOdds = new Map();
    this.columns = [];
  }

  // The column that is "now" while the race is open, or null.
  currentColumn(race, nowMs) {
    if (!race || race.status !== "open") return null;
    const start = toMs(race.start_time);
    if (start === null) return null;
    const bucket = bucketOf(minutesToStart(start, nowMs));
    return this.columns.includes(bucket) ? bucket : null;
  }

  highlightNow(race, nowMs) {
    const current = this.currentColumn(race, nowMs);
    for (const node of this.table.querySelectorAll(".col-now")) node.classList.remove("col-now");
    if (current === null) return;
    for (const node of this.table.querySelectorAll(`[data-interval="${current}"]`)) node.classList.add("col-now");
  }

  render({ race, entrants, timeline, view, indicators, nowMs }) {
    this.columns = timelineColumns(timeline.intervals());
    const active = entrants.filter((entrant) => !entrant.is_scratched);
    const activeIds = active.map((entrant) => entrant.entrant_id);
    const amountKey = view === "place" ? "incremental_place_amount" : "incremental_win_amount";
    const values = view === "odds"
      ? oddsIndicatorValues(this.columns, activeIds, (id, column) => winPrice(timeline.cell(id, column)))
      : moneyIndicatorValues(this.columns, activeIds, (id, column) => {
        const doc = timeline.cell(id, column);
        return doc ? doc[amountKey] : null;
      });
    this.renderHead(race);
    this.renderBody({ entrants, timeline, view, indicators, values, amountKey });
    this.renderFoot({ entrants: active, timeline, view, amountKey });
    this.highlightNow(race, nowMs);
  }

  renderHead(race) {
    const start = toMs(race && race.start_time);
    const cells = [
      el("th", { class: "sticky c-silk", title: "Silks" }, ""),
      el("th", { class: "sticky c-no", title: "Runner number" }, "#"),
      el("th", { class: "sticky c-runner" }, "Runner", el("span", { class: "sub" }, "Jockey · Trainer")),
      el("th", { class: "c-odds", title: "Fixed win odds" }, "Win", el("span", { class: "sub" }, "fixed")),
      el("th", { class: "c-odds", title: "Fixed place odds" }, "Place", el("span", { class: "sub" }, "fixed")),
      el("th", { class: "c-odds pool", title: "Tote win odds" }, "Tote", el("span", { class: "sub" }, "win")),
      el("th", { class: "c-hold", title: "Share of money held" }, "Hold", el("span", { class: "sub" }, "%")),
    ];
    for (const column of this.columns) {
      const label = column === 0 ? "0" : String(column);
      const wall = start === null ? "" : nzTime(start - column * 60000);
      cells.push(
        el(
          "th",
          { class: `num${column < 0 ? " post" : ""}`, "data-interval": column, "data-testid": "timeline-header",
            title: column === 0 ? "Advertised start" : column < 0 ? `${-column} min after the start` : `${column} min before the start` },
          label,
          el("span", { class: "sub" }, wall),
        ),
      );
    }
    cells.push(el("th", { class: "c-pool", title: "Runner's current pool amount" }, "Pool", el("span", { class: "sub" }, "$")));
    cells.push(el("th", { class: "c-share", title: "Share of the pool among runners" }, "Share", el("span", { class: "sub" }, "%")));
    this.thead.replaceChildren(el("tr", {}, cells));
  }

  renderBody({ entrants, timeline, view, indicators, values, amountKey }) {
    const poolKey = view === "place" ? "place_pool_amount" : "win_pool_amount";
    const active = entrants.filter((entrant) => !entrant.is_scratched);
    const known = active.map((entrant) => entrant[poolKey]).filter((value) => value !== null && value !== undefined);
    const poolSum = known.reduce((sum, value) => sum + value, 0);
    const rows = entrants.map((entrant) => {
      const scratched = entrant.is_scratched;
      const row = el("tr", {
        class: [scratched ? "scratched" : "", entrant.favourite ? "fav" : ""].filter(Boolean).join(" "),
        "data-testid": "entrant-row",
        "data-entrant-id": entrant.entrant_id,
        "data-runner-number": entrant.runner_number,
        "data-scratched": scratched ? "true" : "false",
      });
      row.append(this.silkCell(entrant));
      row.append(el("td", { class: "sticky c-no" }, entrant.runner_number));
      const people = [entrant.jockey && `J: ${entrant.jockey}`, entrant.trainer_name && `T: ${entrant.trainer_name}`]
        .filter(Boolean).join(" · ");
      row.append(
        el(
          "td",
          { class: "sticky c-runner", title: entrant.name },
          el("span", { class: "runner-name", "data-testid": "runner-name" },
            entrant.name,
            entrant.barrier ? el("span", { class: "muted" }, ` (${entrant.barrier})`) : null,
            scratched ? el("span", { class: "scr", "data-testid": "scratched-tag" }, "SCR") : null),
          el("span", { class: "runner-sub" }, people || "—"),
        ),
      );
      row.append(this.oddsCell(entrant, "fixed_win_odds", "fixed-win"));
      row.append(this.oddsCell(entrant, "fixed_place_odds", "fixed-place"));
      row.append(el("td", { class: "c-odds pool", "data-testid": "pool-win" }, scratched ? "—" : odds(entrant.pool_win_odds)));
      row.append(el("td", { class: "c-hold", "data-testid": "hold" }, scratched ? "—" : percent(entrant.hold_percentage, 2)));
      for (const column of this.columns) {
        row.append(this.timelineCell(entrant, column, { timeline, view, indicators, values, amountKey }));
      }
      const amount = scratched ? null : entrant[poolKey];
      row.append(el("td", { class: "c-pool", "data-testid": "pool-amount" }, amount === null || amount === undefined ? "—" : dollars(amount)));
      const share = amount === null || amount === undefined || poolSum <= 0 ? null : (amount * 100) / poolSum;
      row.append(el("td", { class: "c-share", "data-testid": "pool-share" }, percent(share, 1)));
      return row;
    });
    this.tbody.replaceChildren(...rows);
  }

  silkCell(entrant) {
    const url = entrant.silk_url_64 || entrant.silk_url;
    const cell = el("td", { class: "sticky c-silk" });
    if (!url) {
      cell.append(el("div", { class: "silk-fallback", title: entrant.silk_colours || "No silks" }));
      return cell;
    }
    const image = el("img", { class: "silk", src: url, alt: "", loading: "lazy", title: entrant.silk_colours || "" });
    image.addEventListener("error", () => image.replaceWith(el("div", { class: "silk-fallback", title: entrant.silk_colours || "" })), { once: true });
    cell.append(image);
    return cell;
  }

  oddsCell(entrant, key, testid) {
    const value = entrant.is_scratched ? null : entrant[key];
    const cell = el("td", { class: "c-odds", "data-testid": testid }, odds(value));
    const memo = `${entrant.entrant_id}|${key}`;
    const before = this.previousOdds.get(memo);
    if (before !== undefined && before !== null && value !== null && value !== undefined && before !== value) {
      cell.classList.add(value < before ? "flash-down" : "flash-up");
    }
    this.previousOdds.set(memo, value);
    return cell;
  }

  timelineCell(entrant, column, { timeline, view, indicators, values, amountKey }) {
    const doc = timeline.cell(entrant.entrant_id, column);
    const attributes = {
      class: "cell num",
      "data-testid": "timeline-cell",
      "data-interval": column,
      "data-entrant-id": entrant.entrant_id,
    };
    let text = null;
    if (doc) {
      text = view === "odds" ? (winPrice(doc) === null ? null : odds(winPrice(doc)))
        : incrementText(doc[amountKey], doc.is_baseline);
      attributes["data-doc-id"] = doc.id;
      if (doc.is_baseline && view !== "odds") attributes.class += " baseline";
    }
    if (text === null) attributes.class += " empty-cell";
    const cell = el("td", attributes, text ?? "—");
    if (!entrant.is_scratched) {
      const value = values.get(`${entrant.entrant_id}|${column}`);
      const indicator = pickIndicator(indicators, value);
      if (indicator) {
        // CSSOM styles are allowed by the page's CSP (no inline style attributes).
        cell.style.backgroundColor = indicator.color;
        cell.dataset.indicator = String(indicator.display_order);
        cell.dataset.indicatorColor = indicator.color;
        const what = view === "odds" ? `shortened ${value.toFixed(1)}%` : `+${value.toFixed(1)} pts of the column's money`;
        cell.title = `${rangeLabel(indicator)}: ${what}`;
      }
    }
    return cell;
  }

  renderFoot({ entrants, timeline, view, amountKey }) {
    if (view === "odds") {
      this.tfoot.replaceChildren();
      return;
    }
    const poolKey = view === "place" ? "place_pool_amount" : "win_pool_amount";
    const cells = [el("td", { class: "sticky c-silk" }), el("td", { class: "sticky c-no" }),
      el("td", { class: "sticky c-runner" }, view === "place" ? "Place money in" : "Win money in"),
      el("td"), el("td"), el("td"), el("td", { class: "c-hold" })];
    for (const column of this.columns) {
      let total = 0;
      let any = false;
      for (const entrant of entrants) {
        const doc = timeline.cell(entrant.entrant_id, column);
        if (!doc) continue;
        any = true;
        total += Math.max(0, doc[amountKey]);
      }
      cells.push(el("td", { class: "cell num", "data-interval": column, "data-testid": "column-total" }, any && total > 0 ? dollars(total) : "—"));
    }
    const amounts = entrants.map((entrant) => entrant[poolKey]).filter((value) => value !== null && value !== undefined);
    cells.push(el("td", { class: "c-pool" }, amounts.length ? dollars(amounts.reduce((a, b) => a + b, 0)) : "—"));
    cells.push(el("td", { class: "c-share" }));
    this.tfoot.replaceChildren(el("tr", {}, cells));
  }
}
