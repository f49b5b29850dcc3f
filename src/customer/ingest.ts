import { BucketAccumulator, readAll, type MeterEvent, type MeterSet, type Reading } from "../domain/metering";
import { addToBuckets } from "./buckets";
import { jsonChunks, type Sql } from "./sql";

export const MAX_FUTURE_MS = 5 * 60_000;

export interface Rejection {
  index: number;
  id: string;
  source: string;
  reason: string;
}

export interface IngestOutcome {
  accepted: number;
  duplicates: number;
  rejected: Rejection[];
  /** Indexes (in the request) of the events stored by this call. */
  acceptedIndexes: number[];
  /** What the stored events added, for entitlement usage and thresholds. */
  buckets: BucketAccumulator;
}

/**
 * Counts a batch exactly once. Must run inside one synchronous transaction with no await: the
 * dedupe check, the event insert and the bucket update either all happen or none do, so a retry
 * after a crash neither loses nor double-counts (DESIGN invariant 1; OpenMeter #5118).
 */
export function ingestBatch(sql: Sql, meters: MeterSet, events: readonly MeterEvent[], now: number, retentionMs: number): IngestOutcome {
  const rejected: Rejection[] = [];
  const reject = (ev: MeterEvent, reason: string) => rejected.push({ index: ev.index, id: ev.id, source: ev.source, reason });
  const oldest = now - retentionMs;
  let duplicates = 0;

  // Same (source, id) twice in one request: the first occurrence stands for the event.
  const firsts = new Map<string, MeterEvent>();
  const repeats: [MeterEvent, MeterEvent][] = [];
  for (const ev of events) {
    const key = `${ev.source}\u0000${ev.id}`;
    const first = firsts.get(key);
    if (first) repeats.push([ev, first]);
    else firsts.set(key, ev);
  }

  const inWindow: MeterEvent[] = [];
  for (const ev of firsts.values()) {
    if (ev.time < oldest) reject(ev, `event time ${new Date(ev.time).toISOString()} is older than the retention window (${Math.round(retentionMs / 86_400_000)} days)`);
    else if (ev.time > now + MAX_FUTURE_MS) reject(ev, `event time ${new Date(ev.time).toISOString()} is more than 5 minutes in the future`);
    else inWindow.push(ev);
  }

  const seen = existing(sql, inWindow);
  const fresh: { ev: MeterEvent; readings: Reading[] }[] = [];
  for (const ev of inWindow) {
    if (seen.has(ev.index)) {
      duplicates++;
      continue;
    }
    const r = readAll(meters, ev);
    if (!r.ok) reject(ev, r.reason);
    else fresh.push({ ev, readings: r.readings });
  }

  const buckets = new BucketAccumulator();
  for (const { ev, readings } of fresh) for (const r of readings) if (r.ok) buckets.add(r, ev.time);

  const rows = fresh.map(({ ev }) => [ev.source, ev.id, ev.time, ev.type, ev.data]);
  for (const chunk of jsonChunks(rows)) {
    sql.exec(
      `INSERT INTO events (source, id, time, type, data, ingested_at)
       SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ? FROM json_each(?)`,
      now,
      chunk,
    );
  }
  addToBuckets(sql, buckets.deltas(), buckets.uniques());

  // A repeat shares its first occurrence's fate: counted once if that was, rejected alongside it if not.
  const rejectedAt = new Set(rejected.map((r) => r.index));
  for (const [ev, first] of repeats) {
    if (rejectedAt.has(first.index)) reject(ev, `same (source, id) as event ${first.index}, which was rejected`);
    else duplicates++;
  }
  rejected.sort((a, b) => a.index - b.index);
  return { accepted: fresh.length, duplicates, rejected, acceptedIndexes: fresh.map((f) => f.ev.index), buckets };
}

/** Request indexes of the events already stored: one read per event, no writes. */
function existing(sql: Sql, events: readonly MeterEvent[]): Set<number> {
  const found = new Set<number>();
  if (events.length === 0) return found;
  for (const chunk of jsonChunks(events.map((e) => [e.source, e.id, e.index]))) {
    const cursor = sql.exec<{ i: number }>(
      "SELECT value->>2 AS i FROM json_each(?) WHERE EXISTS (SELECT 1 FROM events WHERE source = value->>0 AND id = value->>1)",
      chunk,
    );
    for (const row of cursor) found.add(row.i);
  }
  return found;
}
