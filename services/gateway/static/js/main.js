// Boot: route by path, start the header widgets, health checks and the connection badge.

import { AlertsFeed } from "./alerts.js";
import { checkHealth, connection } from "./api.js";
import { AudibleAlerts } from "./audio.js";
import { serverClock } from "./clock.js";
import { countdown, nzClock } from "./format.js";
import { MeetingsView } from "./meetings.js";
import { NextRaceButton } from "./nextrace.js";
import { Poller } from "./poller.js";
import { RaceView } from "./race.js";
import { SettingsDialog, alertConfig } from "./settings.js";

const HEALTH_MS = 60000;
const MIN_RETRY_GAP_MS = 5000;
const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

// The page for the path, and the alerts feed it shows (the meetings page's panel, or the whole
// /alerts page), if any.
function route(onSound) {
  const path = window.location.pathname;
  const match = path.match(/^\/race\/([^/]+)\/?$/);
  if (match) return { page: new RaceView(document.getElementById("race-view"), decodeURIComponent(match[1])) };
  if (path === "/" || path === "") {
    const feed = new AlertsFeed($("alerts-panel"), { limit: 20, show: 8, onSound });
    return { page: new MeetingsView(document.getElementById("meetings-view")), feed };
  }
  if (path === "/alerts" || path === "/alerts/") {
    document.title = "Alerts · Raceday";
    const page = new AlertsFeed(document.getElementById("alerts-view"), { limit: 100, onSound });
    return { page, feed: null };
  }
  return { page: null };
}

function boot() {
  const audible = new AudibleAlerts();
  // Browsers start audio only after a user gesture: the first click or key press on the page allows it.
  for (const kind of ["pointerdown", "keydown"]) {
    document.addEventListener(kind, () => audible.unlock(), { once: true, capture: true });
  }
  const { page, feed } = route(() => audible.beep());
  if (!page) {
    document.getElementById("error-view").hidden = false;
    $("error-message").textContent = "Unknown page.";
  }

  const health = new Poller("health", async () => {
    await checkHealth();
    return HEALTH_MS;
  });
  const nextRace = new NextRaceButton($("next-race-button"));
  const settings = new SettingsDialog($("alert-settings-dialog"));
  const pollers = [health, nextRace.poller, page && page.poller, feed && feed.poller].filter(Boolean);

  const badge = $("connection-badge");
  const panel = $("disconnected-panel");
  const renderConnection = () => {
    badge.dataset.state = connection.state;
    badge.textContent = connection.state;
    panel.hidden = connection.state !== "disconnected";
  };
  // Both reactions below are rate-limited so a flapping service cannot turn them into a loop.
  let lastRetryAll = 0;
  const retryAll = () => {
    if (Date.now() - lastRetryAll < MIN_RETRY_GAP_MS) return;
    lastRetryAll = Date.now();
    for (const poller of pollers) if (poller !== health) poller.kick();
  };
  let lastHealthKick = 0;
  connection.addEventListener("change", () => {
    const wasDisconnected = badge.dataset.state === "disconnected";
    renderConnection();
    // Back online: refresh everything at once rather than waiting out the backoff.
    if (wasDisconnected && connection.state === "connected") retryAll();
  });
  connection.addEventListener("recovering", retryAll);
  // A failed request triggers a health check straight away (rest-api.md §4.2).
  connection.addEventListener("failure", () => {
    if (Date.now() - lastHealthKick < MIN_RETRY_GAP_MS) return;
    lastHealthKick = Date.now();
    health.kick();
  });
  $("retry-now").addEventListener("click", () => {
    for (const poller of pollers) poller.kick();
  });
  renderConnection();

  $("settings-button").addEventListener("click", () => {
    audible.unlock();
    settings.open();
  });
  alertConfig.addEventListener("change", () => audible.setEnabled(alertConfig.audible));
  const loadConfig = new Poller("alert-config", async () => {
    await alertConfig.load();
    return null; // on load and after saving only
  });

  const tick = () => {
    const now = Date.now();
    const serverNow = serverClock.now();
    $("nz-clock").textContent = nzClock(serverNow);
    nextRace.tick(serverNow);
    if (page && page.tick) page.tick(serverNow);
    const stale = $("stale-badge");
    const expected = page && page.expectedIntervalMs ? page.expectedIntervalMs() : null;
    const age = page && page.lastSuccess ? now - page.lastSuccess : null;
    const isStale = expected !== null && age !== null && age > 2 * expected + 5000;
    stale.hidden = !isStale;
    if (isStale) stale.textContent = `stale · updated ${countdown(age)} ago`;
    if (connection.state === "disconnected") {
      const next = Math.min(...pollers.map((poller) => poller.nextAt ?? Infinity));
      const seconds = Number.isFinite(next) ? Math.ceil((next - now) / 1000) : 0;
      $("disconnected-detail").textContent = seconds > 0
        ? `Retrying automatically in ${seconds} s…`
        : "Retrying automatically…";
    }
  };

  health.start();
  loadConfig.start();
  nextRace.start();
  if (page) page.start();
  if (feed) feed.start();
  tick();
  setInterval(tick, 1000);
}

boot();
