// Formatting in New Zealand time, whatever the browser's zone; money arrives in integer cents.

const NZ = "Pacific/Auckland";
const timeFormat = new Intl.DateTimeFormat("en-NZ", { timeZone: NZ, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const clockFormat = new Intl.DateTimeFormat("en-NZ", {
  timeZone: NZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});
const dateFormat = new Intl.DateTimeFormat("en-NZ", { timeZone: NZ, weekday: "short", day: "numeric", month: "short" });
const isoDateParts = new Intl.DateTimeFormat("en-CA", { timeZone: NZ, year: "numeric", month: "2-digit", day: "2-digit" });
const wholeNumber = new Intl.NumberFormat("en-NZ", { maximumFractionDigits: 0 });

export function toMs(value) {
  if (value === null || value === undefined) return null;
  const ms = typeof value === "number" ? value : Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

export function nzTime(value) {
  const ms = toMs(value);
  return ms === null ? "—" : timeFormat.format(ms);
}

export function nzClock(ms) {
  return clockFormat.format(ms);
}

export function nzDateLabel(ms) {
  return dateFormat.format(ms);
}

export function nzIsoDate(ms) {
  return isoDateParts.format(ms); // en-CA gives YYYY-MM-DD
}

// Half-up to whole dollars, computed in integers.
export function centsToDollars(cents) {
  return Math.floor((cents + 50) / 100);
}

export function dollars(cents) {
  if (cents === null || cents === undefined) return "—";
  const value = centsToDollars(cents);
  return (value < 0 ? "-$" : "$") + wholeNumber.format(Math.abs(value));
}

export function odds(value) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(2);
}

export function percent(value, digits = 1) {
  return value === null || value === undefined || !Number.isFinite(value) ? "—" : `${value.toFixed(digits)}%`;
}

export function countdown(ms) {
  if (ms === null || ms === undefined) return "";
  const negative = ms < 0;
  let seconds = Math.floor(Math.abs(ms) / 1000);
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const body = hours > 0
    ? `${hours}h ${String(minutes).padStart(2, "0")}m`
    : `${minutes}m ${String(seconds).padStart(2, "0")}s`;
  return negative ? `-${body}` : body;
}

export function titleCase(value) {
  if (!value) return "";
  return String(value).toLowerCase().replace(/(^|[\s_-])\w/g, (match) => match.toUpperCase()).replace(/_/g, " ");
}

// Create an element with attributes and children in one call.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
