// The server's clock. Normally real time; under `raceday up --sim-speed X` the gateway announces an
// accelerated clock (X-Raceday-Clock: <epoch ms>;speed=<X>) and countdowns and cadences follow it.

const MIN_REAL_DELAY_MS = 2000;

class ServerClock {
  constructor() {
    this.speed = 1;
    this.anchorServer = null;
    this.anchorLocal = 0;
  }

  sync(header) {
    const [ms, ...parameters] = header.split(";");
    const serverMs = Number(ms);
    const speedParameter = parameters.map((item) => item.trim()).find((item) => item.startsWith("speed="));
    const speed = speedParameter ? Number(speedParameter.slice(6)) : 1;
    if (!Number.isFinite(serverMs) || !Number.isFinite(speed) || speed <= 0) return;
    this.anchorServer = serverMs;
    this.anchorLocal = Date.now();
    this.speed = speed;
  }

  now() {
    if (this.anchorServer === null) return Date.now();
    return this.anchorServer + (Date.now() - this.anchorLocal) * this.speed;
  }

  // A cadence on the server's clock as a real delay.
  realDelay(serverMs) {
    if (serverMs === null || serverMs === undefined || this.speed === 1) return serverMs;
    return Math.max(MIN_REAL_DELAY_MS, serverMs / this.speed);
  }
}

export const serverClock = new ServerClock();
