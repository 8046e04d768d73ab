// A self-scheduling poll loop: the task says when to run next; failures back off 5 s, 10 s, 20 s … 120 s.

const BACKOFF_START_MS = 5000;
const BACKOFF_MAX_MS = 120000;

export class Poller {
  constructor(name, task) {
    this.name = name;
    this.task = task; // async () => next delay in ms, or null to stop
    this.timer = null;
    this.failures = 0;
    this.running = false;
    this.stopped = false;
    this.nextAt = null;
    this.again = false;
  }

  start() {
    this.stopped = false;
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.nextAt = null;
  }

  // Run now (e.g. "retry now"); if a run is in flight, run once more as soon as it ends.
  kick() {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.run();
  }

  schedule(delayMs) {
    clearTimeout(this.timer);
    if (this.stopped || delayMs === null || delayMs === undefined) {
      this.nextAt = null;
      return;
    }
    this.nextAt = Date.now() + delayMs;
    this.timer = setTimeout(() => this.run(), Math.max(0, delayMs));
  }

  async run() {
    if (this.stopped) return;
    this.running = true;
    let delay;
    try {
      delay = await this.task();
      this.failures = 0;
    } catch (error) {
      delay = Math.min(BACKOFF_START_MS * 2 ** this.failures, BACKOFF_MAX_MS);
      this.failures += 1;
      console.warn(`${this.name} failed; retrying in ${delay / 1000}s`, error);
    } finally {
      this.running = false;
    }
    if (this.again && !this.stopped) {
      // Something changed while this run was reading: read again now, keeping the cadence after.
      this.again = false;
      this.run();
      return;
    }
    this.schedule(delay);
  }
}
