// Colour indicators of rest-api.md §4.1, as pure functions of the grid's columns and cells.

export const INDICATOR_THRESHOLD = 5;

// Pre-start timeline columns, earliest first; post-start columns (-1, -2, …) follow when data exists.
export const PRE_START_COLUMNS = [60, 55, 50, 45, 40, 35, 30, 25, 20, 15, 10, 5, 4, 3, 2, 1, 0];

export function timelineColumns(intervals) {
  const lowest = Math.min(0, ...intervals);
  const post = [];
  for (let value = -1; value >= lowest; value -= 1) post.push(value);
  return [...PRE_START_COLUMNS, ...post];
}

// The bucket a poll at `minutesToStart` (integer, half-up) lands in (money-flow.md §6.2).
export function bucketOf(minutesToStart) {
  if (minutesToStart >= 60) return 60;
  if (minutesToStart >= 5) return Math.floor(minutesToStart / 5) * 5;
  return minutesToStart;
}

export function minutesToStart(startMs, nowMs) {
  return Math.floor((startMs - nowMs + 30000) / 60000);
}

// The first enabled indicator whose range holds `value` (only values of at least 5 count).
export function pickIndicator(indicators, value) {
  if (value === null || value === undefined || !Number.isFinite(value) || value < INDICATOR_THRESHOLD) return null;
  const ordered = [...indicators].sort((a, b) => a.display_order - b.display_order);
  for (const indicator of ordered) {
    if (!indicator.enabled) continue;
    const min = indicator.percentage_range_min;
    const max = indicator.percentage_range_max;
    if (value >= min && (max === null || max === undefined || value < max)) return indicator;
  }
  return null;
}

export function rangeLabel(indicator) {
  const min = indicator.percentage_range_min;
  const max = indicator.percentage_range_max;
  return max === null || max === undefined ? `${min}%+` : `${min}–${max}%`;
}

// Money views: each runner's share of the column's positive increments, and its rise in points
// from the previous column. `amount(entrantId, column)` gives the increment in cents or null.
export function moneyIndicatorValues(columns, runnerIds, amount) {
  const shares = columns.map((column) => {
    const positive = runnerIds.map((id) => Math.max(0, amount(id, column) ?? 0));
    const total = positive.reduce((sum, value) => sum + value, 0);
    const byRunner = new Map();
    runnerIds.forEach((id, index) => byRunner.set(id, total > 0 ? (positive[index] * 100) / total : null));
    return { total, byRunner };
  });
  const values = new Map();
  for (let index = 1; index < columns.length; index += 1) {
    const current = shares[index];
    const previous = shares[index - 1];
    if (current.total === 0 || previous.total === 0) continue;
    for (const id of runnerIds) {
      values.set(`${id}|${columns[index]}`, current.byRunner.get(id) - previous.byRunner.get(id));
    }
  }
  return values;
}

// A timeline document's win price: the fixed odds, else the tote's (null when neither is known).
export function winPrice(doc) {
  if (!doc) return null;
  return doc.fixed_win_odds ?? doc.pool_win_odds ?? null;
}

// Odds view: the percentage shortening of the win price from the previous column.
export function oddsIndicatorValues(columns, runnerIds, price) {
  const values = new Map();
  for (let index = 1; index < columns.length; index += 1) {
    for (const id of runnerIds) {
      const before = price(id, columns[index - 1]);
      const now = price(id, columns[index]);
      if (before === null || now === null || before === undefined || now === undefined || before <= 0) continue;
      values.set(`${id}|${columns[index]}`, ((before - now) * 100) / before);
    }
  }
  return values;
}
