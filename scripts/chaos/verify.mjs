// Reads every total back from the gateway and compares it with the oracle (./oracle.mjs).
import { countedEvents, diffRows, expectedRows, expectedUsage, rowKey, storedEvents } from "./oracle.mjs";

const DAY = 86_400_000;

/** The views each meter is compared in: per subject (exact, from the Durable Objects) and namespace-wide (D1). */
const VIEWS = [
  { name: "total", model: false, window: null },
  { name: "by model", model: true, window: null },
  { name: "by model, DAY UTC", model: true, window: { zone: "UTC" } },
  { name: "DAY Asia/Kolkata", model: false, window: { zone: "Asia/Kolkata" } },
];

function queryString(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) if (x !== undefined) q.append(k, String(x));
  return q.toString();
}

function viewParams(view) {
  return {
    ...(view.model ? { groupBy: ["model"] } : {}),
    ...(view.window ? { windowSize: "DAY", windowTimeZone: view.window.zone } : {}),
  };
}

/** Answer rows → the oracle's row keys. */
function rowsToMap(rows, view) {
  const m = new Map();
  for (const r of rows) {
    const key = rowKey(r.subject, view.model ? r.groupBy.model : null, view.window ? Date.parse(r.windowStart) : null);
    if (m.has(key)) throw new Error(`two answer rows for ${key}`);
    m.set(key, r.value);
  }
  return m;
}

export async function getJson(call, path) {
  const res = await call(path);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${path} → ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/**
 * Per-subject queries: all subjects in one request (≤ 100), every meter, every view.
 * Returns { compared, differences }.
 */
export async function verifySubjects(call, { meters, subjects, ledger, eventType, from }) {
  const events = countedEvents(ledger, eventType);
  let compared = 0;
  const differences = [];
  for (const meter of meters) {
    for (const view of VIEWS) {
      const body = await getJson(call, `/api/v1/meters/${meter.slug}/query?${queryString({ subject: subjects, from, ...viewParams(view) })}`);
      const expected = expectedRows(meter.aggregation, events, view);
      compared += expected.size;
      differences.push(...diffRows(`per-subject ${meter.slug} (${view.name})`, expected, rowsToMap(body.data, view)));
    }
  }
  return { compared, differences };
}

/** Namespace-wide queries from D1 snapshots, grouped by subject; waits until they include `lastAckAt`. */
export async function verifyNamespace(call, { meters, ledger, eventType, from, lastAckAt, timeoutMs }) {
  const events = countedEvents(ledger, eventType);
  const deadline = Date.now() + timeoutMs;
  let freshness;
  const started = Date.now();
  for (;;) {
    const body = await getJson(call, `/api/v1/meters/${meters[0].slug}/query?${queryString({ from, groupBy: "subject" })}`);
    freshness = body.freshness;
    if (Date.parse(freshness.completeBefore) > lastAckAt && freshness.pendingSubjects === 0) break;
    if (Date.now() > deadline) {
      return { compared: 0, waitedMs: Date.now() - started, freshness, differences: [`namespace: snapshots not complete after ${timeoutMs} ms: ${JSON.stringify(freshness)}, last ack ${new Date(lastAckAt).toISOString()}`] };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const waitedMs = Date.now() - started;
  let compared = 0;
  const differences = [];
  for (const meter of meters) {
    for (const view of VIEWS) {
      const params = { from, ...viewParams(view), groupBy: ["subject", ...(view.model ? ["model"] : [])] };
      const body = await getJson(call, `/api/v1/meters/${meter.slug}/query?${queryString(params)}`);
      const expected = expectedRows(meter.aggregation, events, view);
      compared += expected.size;
      differences.push(...diffRows(`namespace ${meter.slug} (${view.name})`, expected, rowsToMap(body.data, view)));
    }
  }
  return { compared, waitedMs, freshness, differences };
}

/** Entitlement usage (GET …/entitlements/{feature}/value) against the events of the current usage period. */
export async function verifyEntitlements(call, { features, entitled, ledger, eventType }) {
  const events = countedEvents(ledger, eventType);
  let compared = 0;
  const differences = [];
  /** featureKey → Map(subject → { usage, periodFrom }): expected usage in the current period, for the webhook checks. */
  const usage = {};
  for (const subject of entitled) {
    const list = await getJson(call, `/api/v1/subjects/${encodeURIComponent(subject)}/entitlements`);
    for (const f of features) {
      const ent = list.find((e) => e.featureKey === f.key);
      if (!ent?.currentUsagePeriod) {
        differences.push(`entitlement ${subject}/${f.key}: missing or without a current usage period`);
        continue;
      }
      const period = { from: Date.parse(ent.currentUsagePeriod.from), to: Date.parse(ent.currentUsagePeriod.to) };
      const value = await getJson(call, `/api/v1/subjects/${encodeURIComponent(subject)}/entitlements/${f.key}/value`);
      const expected = expectedUsage(f.aggregation, events, subject, f.filters ?? {}, period);
      compared++;
      (usage[f.key] ??= new Map()).set(subject, { usage: expected, periodFrom: ent.currentUsagePeriod.from });
      if (value.usage !== expected) differences.push(`entitlement ${subject}/${f.key} usage: got ${value.usage}, expected ${expected} (period ${ent.currentUsagePeriod.from} – ${ent.currentUsagePeriod.to})`);
    }
  }
  return { compared, usage, differences };
}

/**
 * Every stored event, page by page (GET /api/v1/events returns at most 100, newest first): each
 * (source, id) exactly once, with the time and data it was first sent with, and nothing else.
 * Event times are distinct per subject, so paging by time (`to` = oldest seen − 1 ms) is exact.
 */
export async function verifyEventLog(call, { subjects, ledger, from }) {
  const expected = new Map();
  for (const e of storedEvents(ledger)) expected.set(`${e.subject}\u0000${e.source}\u0000${e.id}`, e);
  const seen = new Map();
  const differences = [];
  let pages = 0;
  for (const subject of subjects) {
    let to = Date.now() + DAY;
    for (;;) {
      const page = await getJson(call, `/api/v1/events?${queryString({ subject, from: new Date(from).toISOString(), to: new Date(to).toISOString(), limit: 100 })}`);
      pages++;
      for (const { event } of page) {
        const key = `${subject}\u0000${event.source}\u0000${event.id}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        const want = expected.get(key);
        if (!want) differences.push(`event log ${subject}: unexpected event ${event.source}/${event.id}`);
        else if (Date.parse(event.time) !== want.time || JSON.stringify(event.data) !== JSON.stringify(want.data)) {
          differences.push(`event log ${subject}: ${event.source}/${event.id} stored as ${event.time} ${JSON.stringify(event.data)}, sent as ${new Date(want.time).toISOString()} ${JSON.stringify(want.data)}`);
        }
      }
      if (page.length < 100) break;
      to = Math.min(...page.map((p) => Date.parse(p.event.time))) - 1;
    }
  }
  for (const [key, n] of seen) if (n > 1) differences.push(`event log: ${key.replaceAll("\u0000", "/")} stored ${n} times`);
  for (const key of expected.keys()) if (!seen.has(key)) differences.push(`event log: ${key.replaceAll("\u0000", "/")} missing`);
  return { compared: expected.size, pages, differences };
}
