// The live push: GET /api/stream as an EventSource. A committed poll of a watched race calls back at
// once; when the stream is down the page keeps its polling cadence, so nothing depends on the push.

const RECONNECT_START_MS = 3000;
const RECONNECT_MAX_MS = 60000;

export class LiveStream extends EventTarget {
  // races: the race ids to follow (empty: every race).
  constructor(races) {
    super();
    this.races = races;
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
    const query = this.races.length ? `?race_ids=${encodeURIComponent(this.races.join(","))}` : "";
    const source = new EventSource(`/api/stream${query}`);
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
