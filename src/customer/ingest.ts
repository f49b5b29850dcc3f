import { BucketAccumulator, readAll, type MeterEvent, type MeterSet, type Reading } from "../domain/metering";
import { addToBuckets } from "./buckets";
import { utf8Length } from "../domain/chunks";
import { chunksOf, insertIgnoringStored, keepIf, MAX_EVENT_BYTES, MAX_WHOLE_JSON, rowOf, storedIndexes } from "./event-log";
import type { Sql } from "./sql";

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
  /** What the stored events added, for entitlement usage and thresholds. */
  buckets: BucketAccumulator;
}

/**
 * Counts a batch exactly once. Must run inside one synchronous transaction with no await: the
 * dedupe check, the event insert and the bucket update either all happen or none do, so a retry
 * after a crash neither loses nor double-counts (DESIGN invariant 1; OpenMeter #5118).
 */
export function ingestBatch(
  sql: Sql,
  meters: MeterSet,
  events: readonly MeterEvent[],
  now: number,
  retentionMs: number,
  hint: DedupeHint = { duplicatesLikely: true },
  /** `events` as EventRows JSON, when the caller has it: used as is if every event is to be stored. */
  rowsJson?: string,
): IngestOutcome {
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

  // Only rows stored one by one can be over MAX_EVENT_BYTES: a whole JSON within MAX_WHOLE_JSON came
  // from a request of at most 1 MiB, and is bound as it is.
  const measure = rowsJson === undefined || rowsJson.length > MAX_WHOLE_JSON;
  const inWindow: MeterEvent[] = [];
  for (const ev of firsts.values()) {
    const bytes = measure ? utf8Length(JSON.stringify(rowOf(ev))) : 0;
    if (ev.time < oldest) reject(ev, `event time ${new Date(ev.time).toISOString()} is older than the retention window (${Math.round(retentionMs / 86_400_000)} days)`);
    else if (ev.time > now + MAX_FUTURE_MS) reject(ev, `event time ${new Date(ev.time).toISOString()} is more than 5 minutes in the future`);
    else if (bytes > MAX_EVENT_BYTES) reject(ev, `the event is ${bytes} bytes as stored (JSON writes its numbers out in full); at most ${MAX_EVENT_BYTES} bytes are stored per event`);
    else inWindow.push(ev);
  }

  // Read first, then store the new ones (storeNew: usually one INSERT … ON CONFLICT DO NOTHING that
  // also does the dedupe, docs/performance.md).
  const readable: Readable[] = [];
  const unreadable: { ev: MeterEvent; reason: string }[] = [];
  for (const ev of inWindow) {
    const r = readAll(meters, ev);
    if (r.ok) readable.push({ ev, readings: r.readings });
    else unreadable.push({ ev, reason: r.reason });
  }
  const whole = rowsJson !== undefined && rowsJson.length <= MAX_WHOLE_JSON && readable.length === events.length ? rowsJson : undefined;
  const fresh = storeNew(sql, readable, now, hint, whole);
  duplicates += readable.length - fresh.length;
  // An event no meter can read now is a duplicate if it was stored before (e.g. under an older
  // meter definition), else it is rejected. Rare: only these few need a lookup.
  if (unreadable.length > 0) {
    const seen = storedIndexes(sql, chunksOf(unreadable.map((u) => u.ev)));
    for (const u of unreadable) {
      if (seen.has(u.ev.index)) duplicates++;
      else reject(u.ev, u.reason);
    }
  }

  const buckets = new BucketAccumulator();
  for (const { ev, readings } of fresh) for (const r of readings) if (r.ok) buckets.add(r, ev.time);
  addToBuckets(sql, buckets.deltas(), buckets.uniques());

  // A repeat shares its first occurrence's fate: counted once if that was, rejected alongside it if not.
  const rejectedAt = new Set(rejected.map((r) => r.index));
  for (const [ev, first] of repeats) {
    if (rejectedAt.has(first.index)) reject(ev, `same (source, id) as event ${first.index}, which was rejected`);
    else duplicates++;
  }
  rejected.sort((a, b) => a.index - b.index);
  return { accepted: fresh.length, duplicates, rejected, buckets };
}

type Readable = { ev: MeterEvent; readings: Reading[] };

/** Per Durable Object: whether the last batch had duplicates, which picks the dedupe strategy. */
export interface DedupeHint {
  duplicatesLikely: boolean;
}

/**
 * Stores the events whose (source, id) is not stored yet; returns them. Two strategies, picked by
 * what the previous batch was like:
 * - optimistic (no duplicates lately): one INSERT … ON CONFLICT DO NOTHING, which dedupes as it
 *   writes; rowsWritten says whether all or none were new. A mix is rolled back (a savepoint) and
 *   redone the careful way. RETURNING would name the new rows, but reading 1,000 rows back cost more
 *   than the SELECT below (measured: docs/performance.md).
 * - careful (duplicates lately): a SELECT of the ids already stored, then the same INSERT.
 * A duplicate writes nothing either way.
 */
function storeNew(sql: Sql, events: readonly Readable[], now: number, hint: DedupeHint, json?: string): readonly Readable[] {
  if (events.length === 0) return events;
  const chunks = json !== undefined ? [json] : [...chunksOf(events.map((e) => e.ev))];
  if (!hint.duplicatesLikely) {
    let written = -1;
    // rowsWritten counts index entries too: with an index on events added some day, an all-new batch
    // would look like a mix here — slower, still exact.
    const kept = keepIf(sql, () => {
      written = insertIgnoringStored(sql, chunks, now);
      return written === 0 || written === events.length;
    });
    if (kept && written === events.length) return events;
    hint.duplicatesLikely = true;
    if (kept) return [];
  }
  const seen = storedIndexes(sql, chunks);
  // The stored ones are skipped by the conflict clause: no need to rebuild the JSON without them.
  insertIgnoringStored(sql, chunks, now);
  hint.duplicatesLikely = seen.size > 0;
  return seen.size === 0 ? events : events.filter((e) => !seen.has(e.ev.index));
}
