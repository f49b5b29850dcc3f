import type { Bucket, UniqueValue } from "../domain/aggregate";
import { jsonChunks } from "../domain/chunks";
import type { Aggregation } from "../domain/meter";
import { nextWindowStart, windowStart, type WindowSize } from "../domain/windows";
import { readBuckets, readUniques } from "./buckets";
import type { Sql } from "./sql";

/**
 * A meter's buckets in [from, to), folded by SQLite into one row per answer window and stored group
 * key, each dated at a minute inside its window: foldBuckets then gives the same answer as over
 * the minute buckets themselves, while what reaches JavaScript grows with the answer, not with the
 * customer's history. Read whole, the million minute buckets of two years of one group's usage
 * were a million objects and 3.8 s for one total (bench/query-scale.mjs).
 */
export interface Prefolded {
  buckets: Bucket[];
  uniques: UniqueValue[];
}

export function readPrefolded(sql: Sql, meterId: string, from: number, to: number, size: WindowSize | null, tz: string, aggregation: Aggregation): Prefolded {
  const unique = aggregation === "UNIQUE_COUNT";
  // Minute windows are the buckets themselves.
  if (size === "MINUTE") return { buckets: readBuckets(sql, meterId, from, to), uniques: unique ? readUniques(sql, meterId, from, to) : [] };
  // Index seeks (the first and last minute with data, then the next one after each gap): windows
  // outside the data would be empty.
  const edge = (fn: "min" | "max", at: number, before: number) =>
    sql.one<{ m: number | null }>(`SELECT ${fn}(minute) AS m FROM buckets WHERE meter_id = ? AND minute >= ? AND minute < ?`, meterId, at, before)?.m ?? null;
  const first = edge("min", from, to);
  if (first === null) return { buckets: [], uniques: [] };
  const hi = edge("max", first, to)! + 60_000;
  const nextData = (at: number) => edge("min", at, hi);
  const windows = windowsOver(first, hi, size, tz, nextData);
  let out: Prefolded = { buckets: [], uniques: [] };
  for (const chunk of jsonChunks(windows)) {
    // concat, not push(...rows): a chunk of HOUR windows can fold to more rows than a call takes arguments.
    out = {
      buckets: out.buckets.concat(sql.all<Bucket & Record<string, SqlStorageValue>>(aggregation === "LATEST" ? FOLD_LATEST : FOLD, chunk, meterId)),
      uniques: unique ? out.uniques.concat(sql.all<UniqueValue & Record<string, SqlStorageValue>>(UNIQUES, chunk, meterId)) : out.uniques,
    };
  }
  return out;
}

/** Windows walked between seeks for the next bucket: a gap in the data costs one seek, not a window per hour of it. */
const SEEK_EVERY = 64;

/**
 * [from, to) per window, clipped to the data: `from` is a minute inside the window, where foldBuckets
 * dates its row. Every SEEK_EVERY windows the walk jumps to the window of the next bucket (`nextData`),
 * so a subject active years ago and again now binds a few windows, not every hour in between.
 */
function windowsOver(lo: number, hi: number, size: WindowSize | null, tz: string, nextData: (at: number) => number | null): [number, number][] {
  if (!size) return [[lo, hi]];
  const out: [number, number][] = [];
  for (let start = windowStart(lo, size, tz); start < hi; ) {
    const end = nextWindowStart(start, size, tz);
    out.push([Math.max(start, lo), Math.min(end, hi)]);
    start = end;
    if (out.length % SEEK_EVERY === 0 && start < hi) {
      const next = nextData(start);
      if (next === null) break;
      if (next > start) start = windowStart(next, size, tz);
    }
  }
  return out;
}

/**
 * Per window and group key: sums add, extremes keep, and for LATEST the bucket with the latest event
 * time gives the value — a group's buckets hold disjoint minutes, so that is the one bucket whose
 * minute holds that time. Rows come in (window, group_key) order, as foldBuckets' tie-break across
 * groups expects.
 */
function foldStatement(latest: boolean): string {
  const value = latest
    ? "(SELECT l.latest FROM buckets AS l WHERE l.meter_id = ?2 AND l.minute <= f.latest_at AND l.minute > f.latest_at - 60000 AND l.group_key = f.group_key AND l.latest_at = f.latest_at)"
    : "NULL";
  return `SELECT f.minute AS minute, f.group_key AS group_key, f.sum AS sum, f.count AS count, f.min AS min, f.max AS max, f.latest_at AS latest_at, ${value} AS latest
  FROM (SELECT w.key AS win, w.value->>0 AS minute, b.group_key AS group_key, sum(b.sum) AS sum, sum(b.count) AS count, min(b.min) AS min, max(b.max) AS max, max(b.latest_at) AS latest_at
    FROM json_each(?1) AS w CROSS JOIN buckets AS b ON b.meter_id = ?2 AND b.minute >= w.value->>0 AND b.minute < w.value->>1
    GROUP BY w.key, b.group_key) AS f
  ORDER BY f.win, f.group_key`;
}
const FOLD = foldStatement(false);
const FOLD_LATEST = foldStatement(true);

/** Each distinct value once per window and group key. */
const UNIQUES = `SELECT DISTINCT w.value->>0 AS minute, u.group_key AS group_key, u.value AS value
  FROM json_each(?1) AS w CROSS JOIN uniques AS u ON u.meter_id = ?2 AND u.minute >= w.value->>0 AND u.minute < w.value->>1`;
