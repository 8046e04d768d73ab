// The alerts feed (issue 14): moves across every race of today's NZ day, newest first, each in the
// colour of the user's indicator that classifies it (the server classifies: GET /api/alerts and the
// stream's "alert" events carry `indicator`). Loaded from the API, kept live by the stream, and
// polled when the stream is down. New alerts play the sound when the user enabled audible alerts.

import { getJSON } from "./api.js";
import { el, nzClock, toMs } from "./format.js";
import { LiveStream } from "./live.js";
import { Poller } from "./poller.js";
import { USER_ID, alertConfig } from "./settings.js";

// A safety refresh while the stream is live (a lost event is caught up), and the polling cadence
// while it is not.
const LIVE_REFRESH_MS = 120000;
const POLL_MS = 20000;

export const KIND_LABELS = { win_money: "Win money", place_money: "Place money", win_price: "Win price" };

// "+12.3 pts" for a rise in share, "12.3% shorter" for a price move (one decimal, as the grid).
export function moveText(alert) {
  const value = Number(alert.value).toFixed(1);
  return alert.kind === "win_price" ? `${value}% shorter` : `+${value} pts`;
}

export class AlertsFeed {
  // root: the feed's element (with [data-testid="alerts-list"], "alerts-empty", "alerts-state" and,
  // optionally, "alerts-more"). `limit`: alerts requested per page; `show`: at most that many shown.
  constructor(root, { limit = 100, show = Infinity, onSound = () => {} } = {}) {
    this.root = root;
    this.limit = limit;
    this.show = show;
    this.onSound = onSound;
    this.list = root.querySelector('[data-testid="alerts-list"]');
    this.empty = root.querySelector('[data-testid="alerts-empty"]');
    this.state = root.querySelector('[data-testid="alerts-state"]');
    this.more = root.querySelector('[data-testid="alerts-more"]');
    this.alerts = new Map();
    this.loaded = false;
    this.olderCursor = null;
    this.signature = null;
    this.configVersion = 0;
    this.poller = new Poller("alerts", () => this.refresh());
    this.live = new LiveStream([], { alerts: true, userId: USER_ID });
    this.live.addEventListener("alert", (event) => this.add([event.detail], true));
    this.live.addEventListener("resync", () => this.poller.kick());
    this.live.addEventListener("state", () => {
      this.renderState();
      // Back to polling: the next refresh follows the polling cadence.
      if (this.live.state !== "live") this.poller.kick();
    });
    if (this.more) this.more.addEventListener("click", () => this.loadOlder());
    // Saved ranges classify every alert anew: load the feed again.
    alertConfig.addEventListener("change", () => {
      if (!alertConfig.loaded) return;
      this.configVersion += 1;
      if (this.configVersion > 1) this.reload();
    });
    root.dataset.sounds = "0";
  }

  start() {
    this.root.hidden = false;
    this.poller.start();
    this.live.start();
    this.renderState();
    return this;
  }

  reload() {
    this.alerts.clear();
    this.loaded = false;
    this.olderCursor = null;
    this.poller.kick();
  }

  async refresh() {
    const body = await getJSON("/api/alerts", { user_id: USER_ID, limit: this.limit });
    const first = !this.loaded;
    this.add(body.alerts || [], !first);
    if (first) this.olderCursor = body.next_cursor;
    this.loaded = true;
    this.root.dataset.loaded = "true";
    this.render();
    return this.live.state === "live" ? LIVE_REFRESH_MS : POLL_MS;
  }

  async loadOlder() {
    if (!this.olderCursor) return;
    const body = await getJSON("/api/alerts", { user_id: USER_ID, limit: this.limit, cursor: this.olderCursor });
    this.olderCursor = body.next_cursor;
    this.add(body.alerts || [], false);
  }

  // Merge alerts by id; `fresh` ones not seen before play the sound once per batch.
  add(alerts, fresh) {
    let newest = 0;
    for (const alert of this.alerts.values()) newest = Math.max(newest, alert.alert_id);
    let arrived = 0;
    for (const alert of alerts) {
      if (!alert || !alert.indicator) continue; // only alerts the user's ranges classify
      if (!this.alerts.has(alert.alert_id) && alert.alert_id > newest) arrived += 1;
      this.alerts.set(alert.alert_id, alert);
    }
    if (fresh && arrived && this.loaded && alertConfig.audible) {
      this.root.dataset.sounds = String(Number(this.root.dataset.sounds) + 1);
      this.onSound();
    }
    this.render();
  }

  renderState() {
    if (!this.state) return;
    this.state.dataset.state = this.live.state;
    this.state.textContent = this.live.state === "live" ? "live" : "polling";
    this.state.title = this.live.state === "live"
      ? "New alerts are pushed as polls are committed"
      : "The live stream is unavailable: the feed refreshes every 20 s";
  }

  render() {
    const ordered = [...this.alerts.values()].sort((a, b) => b.alert_id - a.alert_id);
    const shown = ordered.slice(0, this.show);
    // Rebuilt only when what it shows changed: a refresh that brings nothing new leaves the list
    // (and the pointer over it) alone.
    const signature = shown.map((alert) => `${alert.alert_id}:${alert.indicator.color}`).join(",");
    if (signature !== this.signature) {
      this.signature = signature;
      this.list.replaceChildren(...shown.map((alert) => alertItem(alert)));
    }
    this.root.dataset.count = String(shown.length);
    if (this.empty) this.empty.hidden = !this.loaded || ordered.length > 0;
    if (this.more) this.more.hidden = !this.olderCursor;
  }
}

function alertItem(alert) {
  const href = `/race/${encodeURIComponent(alert.race_id)}`;
  const swatch = el("span", { class: "alert-swatch", title: alert.indicator.label });
  // CSSOM styles are allowed by the page's CSP (no inline style attributes).
  swatch.style.backgroundColor = alert.indicator.color;
  const item = el(
    "a",
    {
      class: "alert-item",
      href,
      "data-testid": "alert-item",
      "data-alert-id": alert.alert_id,
      "data-race-id": alert.race_id,
      "data-kind": alert.kind,
      "data-indicator": alert.indicator.display_order,
      title: `${KIND_LABELS[alert.kind] || alert.kind}: ${moveText(alert)} (${alert.indicator.label}) from ${
        alert.previous_interval} to ${alert.time_interval} min before the start`,
    },
    swatch,
    el("span", { class: "alert-time", "data-testid": "alert-time" }, nzClock(toMs(alert.polled_at))),
    el("span", { class: "alert-race", "data-testid": "alert-race" }, `${alert.meeting_name} R${alert.race_number}`),
    el("span", { class: "alert-runner", "data-testid": "alert-runner" }, `${alert.runner_number}. ${alert.runner_name}`),
    el("span", { class: "alert-kind", "data-testid": "alert-kind" }, KIND_LABELS[alert.kind] || alert.kind),
    el("span", { class: "alert-value", "data-testid": "alert-value" }, moveText(alert)),
  );
  item.style.borderLeftColor = alert.indicator.color;
  // The value in the range's colour, as the grid paints its cells.
  item.querySelector(".alert-value").style.backgroundColor = alert.indicator.color;
  return item;
}
