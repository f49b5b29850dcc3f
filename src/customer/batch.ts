import { BucketAccumulator, readAll, type BucketDelta, type MeterEvent, type MeterSet, type UniqueEntry } from "../domain/metering";
import { addToBuckets } from "./buckets";
import { insertIgnoringStored, keepIf, MAX_WHOLE_JSON, rowOf, storedIndexes, storedPositionsOfIds } from "./event-log";
import { MAX_FUTURE_MS, type DedupeHint, type IngestOutcome } from "./ingest";
import type { Sql } from "./sql";

/**
 * A batch of one subject as the Worker hands it to the subject's Durable Object.
 *
 * `rows`: one JSON string of `[source, id, time, type, data, index]` (event-log.ts). A string crosses
 * the RPC boundary as one copy, where 1,000 event objects cost a structured clone each way (measured
 * ~3 µs per event, docs/performance.md); and the same string is what the INSERT reads, so the
 * Durable Object never rebuilds it.
 *
 * `planV2`: the batch metered by the Worker with the meters of config `version`, present only when
 * every event is readable by them: what it adds to the buckets if every event is new, and each
 * reading (event position, meter, group, value) so that the additions of only the new ones can be
 * recomputed without parsing `rows`. The Durable Object uses it only after checking that it applies
 * (ingestPlanned); otherwise it parses `rows` and meters each event itself (ingest.ts ingestBatch).
 * So the usual batch is metered once, outside the Durable Object, whose time is the scarce resource:
 * one object per customer serialises that customer's writes.
 */
export interface EventRows {
  rows: string;
  /**
   * Named for its format, renamed whenever that changes (v2: typed arrays): during a deploy a Worker
   * and a Durable Object may run different versions, and an object that does not know the name meters
   * the rows itself instead of misreading the plan.
   */
  planV2?: BatchPlan;
}

export interface BatchPlan {
  version: number;
  count: number;
  minTime: number;
  maxTime: number;
  deltas: BucketDelta[];
  uniques: UniqueEntry[];
  /**
   * Per event position: its time. Per reading: event position, meter, group key, value (NaN for
   * none: values are finite), unique value (only when a meter counts unique values). Typed arrays
   * because the RPC's structured clone copies them whole, where a plain array is cloned element by
   * element.
   */
  times: Float64Array;
  /**
   * When every event has the same source: it, and the ids as one JSON array (by position). Looking
   * up stored ids from this is ~2× cheaper than from `rows` (bench/sqlite-ids.mjs), which matters to batches that
   * carry re-sent events (docs/performance.md).
   */
  source?: string;
  ids?: string;
  meterIds: string[];
  groupKeys: string[];
  readings: { event: Int32Array; meter: Int32Array; group: Int32Array; value: Float64Array; unique?: (string | null)[] };
}

export function prepareBatch(events: readonly MeterEvent[], meters?: { version: number; set: MeterSet }): EventRows {
  const rows = JSON.stringify(events.map(rowOf));
  if (!meters || rows.length > MAX_WHOLE_JSON) return { rows };
  const acc = new BucketAccumulator();
  const meterIds = new Map<string, number>();
  const groups = new Map<string, number>();
  const readings = { event: [] as number[], meter: [] as number[], group: [] as number[], value: [] as number[], unique: [] as (string | null)[] };
  let uniques = false;
  const times = new Float64Array(events.length);
  const ids: string[] = [];
  const source = events[0]?.source;
  let oneSource = true;
  let minTime = Infinity;
  let maxTime = -Infinity;
  for (let p = 0; p < events.length; p++) {
    const ev = events[p]!;
    const r = readAll(meters.set, ev);
    if (!r.ok) return { rows }; // the Durable Object words the rejection
    for (const reading of r.readings) {
      if (!reading.ok) continue;
      acc.add(reading, ev.time);
      const id = reading.meter.def.id;
      readings.event.push(p);
      readings.meter.push(meterIds.get(id) ?? meterIds.set(id, meterIds.size).size - 1);
      readings.group.push(groups.get(reading.groupKey) ?? groups.set(reading.groupKey, groups.size).size - 1);
      readings.value.push(reading.value ?? NaN);
      readings.unique.push(reading.unique);
      if (reading.unique !== null) uniques = true;
    }
    times[p] = ev.time;
    ids.push(ev.id);
    if (ev.source !== source) oneSource = false;
    if (ev.time < minTime) minTime = ev.time;
    if (ev.time > maxTime) maxTime = ev.time;
  }
  const plan: BatchPlan = { version: meters.version, count: events.length, minTime, maxTime, deltas: acc.deltas(), uniques: acc.uniques(), times, meterIds: [...meterIds.keys()], groupKeys: [...groups.keys()],
    readings: {
      event: Int32Array.from(readings.event),
      meter: Int32Array.from(readings.meter),
      group: Int32Array.from(readings.group),
      value: Float64Array.from(readings.value),
      ...(uniques ? { unique: readings.unique } : {}),
    },
  };
  if (oneSource) Object.assign(plan, { source, ids: JSON.stringify(ids) });
  return { rows, planV2: plan };
}

export function fromRows(batch: EventRows): MeterEvent[] {
  return (JSON.parse(batch.rows) as ReturnType<typeof rowOf>[]).map(([source, id, time, type, data, index]) => ({ index, id, source, type, time, data }));
}

/**
 * A batch with a plan that applies (same meter version as this Durable Object's, every time inside
 * its window): stored with one INSERT that dedupes as it writes, preceded by a SELECT of the stored
 * ids when duplicates are likely (as ingest.ts storeNew decides). The writes are kept only if the
 * INSERT stored exactly the events the SELECT did not find: otherwise (a guess that missed, or an
 * event repeated within the batch) they are rolled back and the result is null — the caller then
 * runs ingestBatch. Inside the caller's transaction, like ingestBatch.
 */
export function ingestPlanned(sql: Sql, batch: EventRows, metersVersion: number, now: number, retentionMs: number, hint: DedupeHint): IngestOutcome | null {
  const p = batch.planV2;
  if (!p || p.version !== metersVersion || batch.rows.length > MAX_WHOLE_JSON) return null;
  if (p.minTime < now - retentionMs || p.maxTime > now + MAX_FUTURE_MS) return null;
  const attempt = (careful: boolean): Set<number> | null => {
    let seen: Set<number> = new Set();
    const kept = keepIf(sql, () => {
      if (careful) seen = p.ids !== undefined ? storedPositionsOfIds(sql, p.source!, p.ids) : storedIndexes(sql, [batch.rows], "position");
      return insertIgnoringStored(sql, [batch.rows], now) === p.count - seen.size;
    });
    return kept ? seen : null;
  };
  let seen = hint.duplicatesLikely ? null : attempt(false);
  if (!seen) seen = attempt(true);
  if (!seen) return null;
  hint.duplicatesLikely = seen.size > 0;
  const buckets = seen.size === 0 ? BucketAccumulator.of(p.deltas, p.uniques) : freshBuckets(p, seen);
  addToBuckets(sql, buckets.deltas(), buckets.uniques());
  return { accepted: p.count - seen.size, duplicates: seen.size, rejected: [], buckets };
}

/** The plan's readings of the events not in `stored` (positions), added up as ingestBatch would. */
function freshBuckets(p: BatchPlan, stored: ReadonlySet<number>): BucketAccumulator {
  const acc = new BucketAccumulator();
  const r = p.readings;
  for (let i = 0; i < r.event.length; i++) {
    const e = r.event[i]!;
    if (stored.has(e)) continue;
    const value = r.value[i]!;
    acc.addReading(p.meterIds[r.meter[i]!]!, p.groupKeys[r.group[i]!]!, Number.isNaN(value) ? null : value, r.unique?.[i] ?? null, p.times[e]!);
  }
  return acc;
}
