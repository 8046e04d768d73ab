// Audible alert: a short tone 60 s before each upcoming race's start, once per race.

import { getJSON } from "./api.js";
import { serverClock } from "./clock.js";
import { Poller } from "./poller.js";
import { toMs } from "./format.js";

const LEAD_MS = 60000;
const POLL_MS = 30000;
const STORAGE_KEY = "raceday.alerted";

function loadAlerted() {
  try {
    return new Set(JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]"));
  } catch (error) {
    return new Set();
  }
}

export class AudibleAlerts {
  constructor() {
    this.enabled = false;
    this.timers = new Map();
    this.alerted = loadAlerted();
    this.context = null;
    this.poller = new Poller("upcoming-races", () => this.refresh());
  }

  // Called from a user gesture (the settings dialog) so the browser lets the audio start.
  unlock() {
    try {
      this.context = this.context || new AudioContext();
      if (this.context.state === "suspended") this.context.resume();
    } catch (error) {
      this.context = null;
    }
  }

  setEnabled(enabled) {
    if (enabled === this.enabled) return;
    this.enabled = enabled;
    if (enabled) {
      this.poller.start();
    } else {
      this.poller.stop();
      for (const timer of this.timers.values()) clearTimeout(timer);
      this.timers.clear();
    }
  }

  async refresh() {
    const body = await getJSON("/api/races/upcoming", { window_minutes: 15, lookback_minutes: 0, limit: 100 });
    const now = serverClock.now();
    for (const race of body.races || []) {
      const start = toMs(race.start_time);
      if (start === null || this.alerted.has(race.race_id) || this.timers.has(race.race_id)) continue;
      const delay = start - LEAD_MS - now;
      if (delay < -5000) continue;
      const realDelay = Math.max(0, delay) / serverClock.speed;
      this.timers.set(race.race_id, setTimeout(() => this.fire(race.race_id), realDelay));
    }
    return serverClock.realDelay(POLL_MS);
  }

  fire(raceId) {
    this.timers.delete(raceId);
    if (!this.enabled || this.alerted.has(raceId)) return;
    this.alerted.add(raceId);
    localStorage.setItem(STORAGE_KEY, JSON.stringify([...this.alerted].slice(-500)));
    this.beep();
  }

  beep() {
    if (!this.context) return;
    const oscillator = this.context.createOscillator();
    const gain = this.context.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, this.context.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, this.context.currentTime + 0.6);
    oscillator.connect(gain).connect(this.context.destination);
    oscillator.start();
    oscillator.stop(this.context.currentTime + 0.6);
  }
}
