// The oracle: what every query must answer, computed only from what the producers generated
// (never from the gateway). Pure functions, no I/O.

const DAY = 86_400_000;
/** Asia/Kolkata is UTC+5:30 all year (no DST since 1945): its days are easy to compute independently. */
const KOLKATA_OFFSET = 330 * 60_000;

export const dayStart = {
  UTC: (t) => Math.floor(t / DAY) * DAY,
  "Asia/Kolkata": (t) => Math.floor((t + KOLKATA_OFFSET) / DAY) * DAY - KOLKATA_OFFSET,
};

/** The events a meter must count: each (source, id) once, of the metered type, neither rejected nor in an invalid request. */
export function countedEvents(ledger, eventType) {
  const seen = new Map();
  for (const e of ledger) {
    if (e.fate !== "count" || e.type !== eventType) continue;
    const key = `${e.source}\u0000${e.id}`;
    if (!seen.has(key)) seen.set(key, e);
  }
  return [...seen.values()];
}

/** The events the gateway must store (GET /api/v1/events): counted ones and those of a type no meter reads. */
export function storedEvents(ledger) {
  const seen = new Map();
  for (const e of ledger) {
    if (e.fate !== "count" && e.fate !== "store") continue;
    seen.set(`${e.source}\u0000${e.id}`, e);
  }
  return [...seen.values()];
}

/**
 * One aggregation over a set of events, as defined (not as implemented): values are integers (or
 * numeric strings of integers), so sums are exact; event times are distinct per subject, so LATEST
 * has no ties; UNIQUE_COUNT counts distinct string forms (7 and "7" are one value).
 */
export function aggregate(aggregation, events) {
  const values = events.map((e) => Number(e.data.value));
  switch (aggregation) {
    case "SUM":
      return values.reduce((a, b) => a + b, 0);
    case "COUNT":
      return events.length;
    case "AVG":
      return values.reduce((a, b) => a + b, 0) / values.length;
    case "MIN":
      return Math.min(...values);
    case "MAX":
      return Math.max(...values);
    case "LATEST": {
      let best = events[0];
      for (const e of events) if (e.time > best.time) best = e;
      return Number(best.data.value);
    }
    case "UNIQUE_COUNT":
      return new Set(events.map((e) => String(e.data.user))).size;
    default:
      throw new Error(`unknown aggregation ${aggregation}`);
  }
}

/**
 * Expected rows of one view of one meter: a Map from the row key (see rowKey) to the value.
 * view: { model: keep models apart, window: null | { zone } (DAY windows in that zone) }.
 */
export function expectedRows(aggregation, events, view) {
  const groups = new Map();
  for (const e of events) {
    const key = rowKey(e.subject, view.model ? e.data.model : null, view.window ? dayStart[view.window.zone](e.time) : null);
    const list = groups.get(key) ?? [];
    list.push(e);
    groups.set(key, list);
  }
  return new Map([...groups].map(([k, list]) => [k, aggregate(aggregation, list)]));
}

export function rowKey(subject, model, windowStart) {
  return `${subject} · ${model ?? "*"} · ${windowStart === null ? "all" : new Date(windowStart).toISOString()}`;
}

/** Expected entitlement usage: the feature's aggregation over its meter's events in the current usage period. */
export function expectedUsage(aggregation, events, subject, filters, period) {
  const inPeriod = events.filter(
    (e) => e.subject === subject && e.time >= period.from && e.time < period.to && Object.entries(filters).every(([k, v]) => e.data[k] === v),
  );
  if (inPeriod.length === 0) return 0;
  return aggregate(aggregation, inPeriod);
}

/** Differences between two row maps: missing, unexpected and different values. */
export function diffRows(label, expected, actual) {
  const out = [];
  for (const [k, v] of expected) {
    if (!actual.has(k)) out.push(`${label}: ${k}: missing (expected ${v})`);
    else if (actual.get(k) !== v) out.push(`${label}: ${k}: got ${actual.get(k)}, expected ${v}`);
  }
  for (const [k, v] of actual) if (!expected.has(k)) out.push(`${label}: ${k}: unexpected row (value ${v})`);
  return out;
}
