// The live push: GET /api/stream as an EventSource. A committed poll of a watched race calls back at
// once; when the stream is down the page keeps its polling cadence, so nothing depends on the push.

const RECONNECT_START_MS = 3000;
const RECONNECT_MAX_MS = 60000;

export class LiveStream extends EventTarget {
  // races: the race ids to follow (empty: every race). With `alerts`, the stream also carries the
  // alerts of those races ("alert" events), classified for `userId` when one is given.
  constructor(races, { alerts = false, userId = null } = {}) {
    super();
    this.races = races;
    this.alerts = alerts;
    this.userId = userId;
    this.source = null;
    this.timer = null;
    this.failures = 0;
    this.state = "connecting"; // "live" while the stream is open, else "polling"
  }

  start() {
    if (typeof EventSource === "undefined") {
      this.setState("polling");
      return this;
    }
    this.open();
    return this;
  }

  open() {
    clearTimeout(this.timer);
    const params = new URLSearchParams();
    if (this.races.length) params.set("race_ids", this.races.join(","));
    if (this.alerts) {
      params.set("alerts", "1");
      if (this.userId) params.set("user_id", this.userId);
    }
    const query = params.toString();
    const source = new EventSource(`/api/stream${query ? `?${query}` : ""}`);
    this.source = source;
    source.addEventListener("open", () => {
      this.failures = 0;
      this.setState("live");
      // Whatever was committed while the stream was down has not been pushed: catch up once.
      this.dispatchEvent(new Event("resync"));
    });
    source.addEventListener("race", (message) => {
      let change;
      try {
        change = JSON.parse(message.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent("change", { detail: change }));
    });
    source.addEventListener("alert", (message) => {
      let alert;
      try {
        alert = JSON.parse(message.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent("alert", { detail: alert }));
    });
    source.addEventListener("reset", () => this.dispatchEvent(new Event("resync")));
    source.addEventListener("error", () => {
      this.setState("polling");
      // The browser retries a dropped stream by itself; one it gave up on (an HTTP error, a proxy
      // that refuses event streams) is reopened here, backing off.
      if (source.readyState === EventSource.CLOSED) {
        const delay = Math.min(RECONNECT_START_MS * 2 ** this.failures, RECONNECT_MAX_MS);
        this.failures += 1;
        this.timer = setTimeout(() => this.open(), delay);
      }
    });
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new Event("state"));
  }
}
