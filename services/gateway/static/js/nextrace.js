// The next-race button: next scheduled race with a live countdown (cadence of rest-api.md §4.2).

import { getJSON } from "./api.js";
import { serverClock } from "./clock.js";
import { countdown, toMs } from "./format.js";
import { Poller } from "./poller.js";

export function nextRaceDelay(startMs, nowMs) {
  if (startMs === null) return 60000;
  const until = startMs - nowMs;
  let delay = 60000;
  if (until <= 60000) delay = 10000;
  else if (until <= 300000) delay = 30000;
  // One more request when the start passes, so the button moves on promptly.
  if (until > 0) delay = Math.min(delay, until + 1000);
  return delay;
}

export class NextRaceButton {
  constructor(button) {
    this.button = button;
    this.detail = button.querySelector('[data-testid="next-race-detail"]');
    this.timer = button.querySelector('[data-testid="next-race-countdown"]');
    this.race = null;
    this.poller = new Poller("next-scheduled", () => this.refresh());
    button.addEventListener("click", () => {
      if (this.race) window.location.assign(`/race/${encodeURIComponent(this.race.race_id)}`);
    });
  }

  start() {
    this.poller.start();
  }

  async refresh() {
    this.race = await getJSON("/api/races/next-scheduled");
    this.render();
    return serverClock.realDelay(nextRaceDelay(this.race ? toMs(this.race.start_time) : null, serverClock.now()));
  }

  render() {
    const race = this.race;
    this.button.disabled = !race;
    if (!race) {
      this.detail.textContent = "No race scheduled";
      this.timer.textContent = "";
      this.button.dataset.raceId = "";
      return;
    }
    this.button.dataset.raceId = race.race_id;
    this.detail.textContent = `R${race.race_number} ${race.name} · ${race.meeting_name || "Unknown meeting"}`;
    this.tick(serverClock.now());
  }

  tick(nowMs) {
    if (!this.race) return;
    this.timer.textContent = countdown(toMs(this.race.start_time) - nowMs);
  }
}
