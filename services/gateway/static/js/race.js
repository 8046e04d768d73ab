// The race view: header, entrants grid with the timeline, pools and results footers, navigation,
// refreshed on the cadence of rest-api.md §4.2.

import { ApiError, getJSON } from "./api.js";
import { serverClock } from "./clock.js";
import { countdown, dollars, el, nzClock, nzTime, odds, titleCase, toMs } from "./format.js";
import { RaceChart } from "./chart.js";
import { EntrantsGrid } from "./grid.js";
import { LiveStream } from "./live.js";
import { Poller } from "./poller.js";
import { alertConfig, renderLegend } from "./settings.js";
import { TimelineStore } from "./timeline.js";

const TERMINAL = new Set(["final", "abandoned"]);
const VIEW_KEY = "raceday.view";

// 15 s near or after the start until final/abandoned, 30 s within 15 min, else 60 s.
export function raceRefreshDelay(race, nowMs) {
  const start = toMs(race.start_time);
  const until = start === null ? Infinity : start - nowMs;
  if (until <= 5 * 60000) return 15000;
  if (until <= 15 * 60000) return 30000;
  return 60000;
}

async function optional(promise) {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

export class RaceView {
  constructor(root, raceId) {
    this.root = root;
    this.raceId = raceId;
    this.race = null;
    this.entrants = [];
    this.pools = null;
    this.results = null;
    this.navigation = null;
    this.view = ["win", "place", "odds"].includes(localStorage.getItem(VIEW_KEY)) ? localStorage.getItem(VIEW_KEY) : "win";
    this.timeline = new TimelineStore(raceId);
    this.grid = new EntrantsGrid(root.querySelector('[data-testid="entrants-grid"]'));
    this.chart = new RaceChart(root.querySelector('[data-testid="race-chart"]'));
    this.poller = new Poller("race", () => this.refresh());
    // The push says when this race has a new poll; the poller's cadence remains the fallback.
    this.live = new LiveStream([raceId]);
    this.live.addEventListener("change", (event) => {
      if (event.detail.race_id === this.raceId) this.poller.kick();
    });
    this.live.addEventListener("resync", () => this.poller.kick());
    this.live.addEventListener("state", () => this.renderLiveState());
    this.sawTerminal = false;
    this.lastSuccess = 0;
    this.expectedMs = 60000;
    this.q = (testid) => root.querySelector(`[data-testid="${testid}"]`);
    for (const button of root.querySelectorAll("[data-view]")) {
      button.addEventListener("click", () => this.setView(button.dataset.view));
    }
    alertConfig.addEventListener("change", () => this.renderGrid());
  }

  start() {
    this.root.hidden = false;
    this.syncViewButtons();
    this.poller.start();
    this.live.start();
    this.renderLiveState();
  }

  renderLiveState() {
    const node = this.q("live-state");
    node.dataset.state = this.live.state;
    node.textContent = this.live.state === "live" ? "live" : "polling";
    node.title = this.live.state === "live"
      ? "New polls are pushed to this page as they are committed"
      : "The live stream is unavailable: this page refreshes on its polling cadence";
  }

  expectedIntervalMs() {
    return this.poller.stopped ? null : this.expectedMs;
  }

  setView(view) {
    this.view = view;
    localStorage.setItem(VIEW_KEY, view);
    this.syncViewButtons();
    this.renderGrid();
  }

  syncViewButtons() {
    for (const button of this.root.querySelectorAll("[data-view]")) {
      button.setAttribute("aria-pressed", button.dataset.view === this.view ? "true" : "false");
    }
    this.root.dataset.view = this.view;
  }

  async refresh() {
    let race, entrants, pools, results, navigation;
    try {
      [race, entrants, pools, results, navigation] = await Promise.all([
        getJSON(`/api/races/${encodeURIComponent(this.raceId)}`),
        getJSON("/api/entrants", { race_id: this.raceId, history_limit: 0 }),
        optional(getJSON("/api/race-pools", { race_id: this.raceId })),
        optional(getJSON("/api/race-results", { race_id: this.raceId })),
        getJSON("/api/races/navigation", { race_id: this.raceId }),
      ]);
    } catch (error) {
      if (this.race) throw error; // the last race stays on screen while the poller retries
      if (error instanceof ApiError && error.status === 404) {
        this.root.dataset.state = "not-found";
        this.q("race-title").textContent = "Race not found";
        return null; // nothing to retry
      }
      this.root.dataset.state = "error";
      this.q("race-title").textContent = `Could not load this race: ${error.message}. Retrying automatically…`;
      throw error;
    }
    this.root.dataset.state = "loaded";
    this.root.dataset.lastCommittedAt = race.last_committed_at || "";
    Object.assign(this, { race, entrants, pools, results, navigation });
    // The timeline follows each race refresh: a full load first, then only what changed.
    await this.timeline.refresh();
    this.lastSuccess = Date.now();
    this.updatedAt = serverClock.now();
    this.render();
    if (TERMINAL.has(race.status)) {
      if (this.sawTerminal) return null; // the one last refresh after final/abandoned is done
      this.sawTerminal = true;
    }
    this.expectedMs = serverClock.realDelay(raceRefreshDelay(race, serverClock.now()));
    return this.expectedMs;
  }

  render() {
    this.renderHeader();
    this.renderNavigation();
    this.renderGrid();
    this.chart.render({ entrants: this.entrants, timeline: this.timeline });
    this.renderPools();
    this.renderResults();
    this.root.dataset.loaded = "true";
    this.root.dataset.timelineDocuments = String(this.timeline.size);
  }

  renderHeader() {
    const race = this.race;
    document.title = `R${race.race_number} ${race.name} · Raceday`;
    this.q("race-title").textContent = `R${race.race_number} · ${race.name}`;
    const scratched = this.entrants.filter((entrant) => entrant.is_scratched).length;
    const runners = this.entrants.length ? this.entrants.length - scratched : race.runner_count;
    const facts = [
      ["Meeting", race.meeting_name],
      ["Country", race.country],
      ["Start", nzTime(race.start_time)],
      ["Type", titleCase(race.race_type || race.type)],
      ["Distance", race.distance ? `${race.distance}m` : null],
      ["Track", race.track_condition],
      ["Weather", race.weather],
      ["Runners", `${runners}${scratched ? ` (${scratched} scr)` : ""}`],
      ["Class", race.race_class],
    ].filter(([, value]) => value);
    this.q("race-meta").replaceChildren(...facts.map(([label, value]) => el("span", {}, `${label} `, el("b", {}, value))));
    const status = this.q("race-status");
    status.className = `status pill ${race.status}`;
    status.textContent = race.status;
    this.tick(serverClock.now());
  }

  tick(nowMs) {
    if (!this.race) return;
    const start = toMs(this.race.start_time);
    const node = this.q("race-countdown");
    if (TERMINAL.has(this.race.status) || start === null) {
      node.textContent = "";
    } else {
      const remaining = start - nowMs;
      node.textContent = remaining >= 0 ? countdown(remaining) : `started ${countdown(-remaining)} ago`;
      node.classList.toggle("soon", remaining < 5 * 60000);
    }
    this.renderDataAge(nowMs);
    this.grid.highlightNow(this.race, nowMs);
  }

  // How old the data on screen is: now against when the TAB generated it (or, when the TAB gave no
  // time, when it was polled).
  renderDataAge(nowMs) {
    const node = this.q("data-age");
    const generated = toMs(this.race.last_generated_at ?? this.race.last_polled_at ?? null);
    if (generated === null) {
      node.textContent = "no polls yet";
      delete node.dataset.ageMs;
      return;
    }
    const age = Math.max(0, nowMs - generated);
    node.dataset.ageMs = String(Math.round(age));
    node.textContent = `data ${countdown(age)} old`;
    node.title = `TAB data generated ${nzClock(generated)}` +
      (this.race.last_committed_at ? `, committed ${nzClock(toMs(this.race.last_committed_at))}` : "");
    node.classList.toggle("stale", age > 60000);
  }

  renderNavigation() {
    const nav = this.navigation || {};
    const link = (testid, target) => {
      const node = this.q(testid);
      if (target) {
        node.href = `/race/${encodeURIComponent(target.race_id)}`;
        node.setAttribute("aria-disabled", "false");
        node.title = `R${target.race_number} ${target.name} · ${target.meeting_name || ""} · ${nzTime(target.start_time)}`;
      } else {
        node.removeAttribute("href");
        node.setAttribute("aria-disabled", "true");
        node.title = "None";
      }
    };
    link("nav-prev", nav.previousRace);
    link("nav-next", nav.nextRace);
    link("nav-next-scheduled", nav.nextScheduledRace);
  }

  renderGrid() {
    if (!this.race) return;
    this.q("entrants-empty").hidden = this.entrants.length > 0;
    this.grid.render({
      race: this.race,
      entrants: this.entrants,
      timeline: this.timeline,
      view: this.view,
      indicators: alertConfig.indicators,
      nowMs: serverClock.now(),
    });
    const what = { win: "Win money in per interval ($)", place: "Place money in per interval ($)", odds: "Fixed win odds per interval" };
    this.q("grid-caption").textContent = `${what[this.view]} · ${this.timeline.size} cells · updated ${nzClock(this.updatedAt ?? serverClock.now())}`;
    renderLegend(this.q("indicator-legend"));
  }

  renderPools() {
    const node = this.q("pools-footer");
    const pools = this.pools;
    if (!pools) {
      node.replaceChildren(el("h2", {}, "Pools"), el("p", { class: "muted", "data-testid": "pools-empty" }, "No pool data available"));
      return;
    }
    const items = [
      ["Win", pools.win_pool_total], ["Place", pools.place_pool_total], ["Quinella", pools.quinella_pool_total],
      ["Trifecta", pools.trifecta_pool_total], ["Exacta", pools.exacta_pool_total], ["First Four", pools.first4_pool_total],
    ];
    node.replaceChildren(
      el("h2", {}, "Pools ", el("span", { class: "muted" }, pools.last_updated ? `updated ${nzTime(pools.last_updated)}` : "")),
      el("div", { class: "pool-list" },
        ...items.map(([label, cents]) => el("div", { class: "pool-item", "data-testid": `pool-${label.toLowerCase().replace(" ", "")}` },
          el("span", { class: "label" }, label), el("span", { class: "value" }, dollars(cents)))),
        el("div", { class: "pool-item total", "data-testid": "pool-total" },
          el("span", { class: "label" }, "Total"), el("span", { class: "value" }, dollars(pools.total_race_pool)))),
    );
  }

  renderResults() {
    const node = this.q("results-footer");
    const results = this.results;
    if (!results || !(results.results_available || (results.dividends_data || []).length)) {
      node.hidden = true;
      return;
    }
    node.hidden = false;
    const tags = [];
    const status = results.result_status;
    if (status === "final") tags.push(el("span", { class: "tag final", "data-testid": "result-tag" }, "FINAL"));
    else if (status === "protest") tags.push(el("span", { class: "tag protest", "data-testid": "result-tag" }, "PROTEST"));
    else tags.push(el("span", { class: "tag interim", "data-testid": "result-tag" }, "INTERIM"));
    if (results.photo_finish) tags.push(el("span", { class: "tag flag" }, "PHOTO"));
    if (results.stewards_inquiry) tags.push(el("span", { class: "tag flag" }, "INQUIRY"));
    if (results.protest_lodged && status !== "protest") tags.push(el("span", { class: "tag flag" }, "PROTEST"));
    const fixed = results.fixed_odds_data || {};
    const placings = (results.results_data || []).map((item) => {
      const price = fixed[String(item.runner_number)] || {};
      return el("tr", { "data-testid": "result-row" },
        el("td", {}, item.position ?? "—"),
        el("td", { class: "num" }, item.runner_number ?? "—"),
        el("td", {}, item.name || price.runner_name || "—"),
        el("td", { class: "num" }, odds(price.fixed_win_odds ?? null)),
        el("td", { class: "num" }, odds(price.fixed_place_odds ?? null)),
        el("td", { class: "muted" }, item.margin_length ? String(item.margin_length) : ""));
    });
    const dividends = (results.dividends_data || []).map((item) =>
      el("span", { "data-testid": "dividend" },
        `${String(item.product_name || "").replace(/^Pool\s+/, "")} `,
        el("b", {}, item.dividend === null || item.dividend === undefined ? "—" : `$${Number(item.dividend).toFixed(2)}`),
        item.positions && item.positions.length ? el("span", { class: "muted" }, ` ${formatPositions(item.positions)}`) : ""));
    node.replaceChildren(
      el("h2", {}, "Results", ...tags),
      el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "Pos"), el("th", { class: "num" }, "No"), el("th", {}, "Runner"),
          el("th", { class: "num" }, "Win"), el("th", { class: "num" }, "Place"), el("th", {}, "Margin"))),
        el("tbody", {}, placings)),
      dividends.length ? el("div", { class: "dividends" }, dividends) : "",
    );
  }
}

function formatPositions(positions) {
  return positions.map((item) => (typeof item === "object" && item !== null ? item.runner_number ?? "" : item)).join("-");
}
