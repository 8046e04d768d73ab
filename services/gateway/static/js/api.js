// REST client: 5 s timeouts, JSON errors, and the shared connection state (rest-api.md §4.1–4.2).

import { serverClock } from "./clock.js";

export const REQUEST_TIMEOUT_MS = 5000;

export class ApiError extends Error {
  constructor(status, body, path) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.path = path;
  }
  // Network failures, timeouts and 5xx mean the service is unreachable; 4xx are answers.
  get isConnectionFailure() {
    return this.status === 0 || this.status >= 500;
  }
}

class Connection extends EventTarget {
  constructor() {
    super();
    this.state = "connecting";
    this.lastSuccess = 0;
    this.lastFailure = 0;
  }
  set(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("change", { detail: state }));
  }
  ok() {
    this.lastSuccess = Date.now();
    this.set("connected");
  }
  failed(error) {
    this.lastFailure = Date.now();
    this.set("disconnected");
    this.dispatchEvent(new CustomEvent("failure", { detail: error }));
  }
}

export const connection = new Connection();

function buildUrl(path, params) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    url.searchParams.set(key, String(value));
  }
  return url;
}

async function request(method, path, { params, body, track = true } = {}) {
  const url = buildUrl(path, params);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  const init = { method, headers: { Accept: "application/json" }, signal: controller.signal, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (cause) {
    const error = new ApiError(0, { error: controller.signal.aborted ? "Request timed out" : "Network error" }, path);
    if (track) connection.failed(error);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const clockHeader = response.headers.get("x-raceday-clock");
  if (clockHeader) serverClock.sync(clockHeader);
  let payload = null;
  try {
    payload = await response.json();
  } catch (cause) {
    payload = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, payload, path);
    if (track && error.isConnectionFailure) connection.failed(error);
    else if (track) connection.ok();
    throw error;
  }
  if (track) connection.ok();
  return payload;
}

export function getJSON(path, params, options = {}) {
  return request("GET", path, { params, ...options });
}

export function postJSON(path, body, params) {
  return request("POST", path, { params, body });
}

// Health decides "connected" on its own terms: 2xx with status "healthy". After a failed data
// request, a healthy answer only announces a possible recovery: the next data request decides.
export async function checkHealth() {
  try {
    const body = await request("GET", "/api/health", { track: false });
    if (body && body.status === "healthy") {
      if (connection.lastFailure > connection.lastSuccess) {
        connection.dispatchEvent(new CustomEvent("recovering"));
      } else {
        connection.ok();
      }
      return body;
    }
    connection.failed(new ApiError(503, body, "/api/health"));
    return body;
  } catch (error) {
    connection.failed(error);
    return error.body || null;
  }
}
