import type { Aggregates } from "../domain/aggregate";
import { sql, type SQL } from "drizzle-orm";
import type { GroupFilters } from "../domain/group-filter";
import type { Aggregation } from "../domain/meter";
import { groupFilterSql, groupPath as path } from "./group-filter-sql";
import { DAY_MS, dayOf, GRANULE_MS, granuleOf, splitByDays } from "../domain/rollup";
import type { Db } from "./client";

/** A namespace-wide usage query over snapshot rows; times are on 15-minute row boundaries. */
export interface SnapshotQuery {
  namespace: string;
  meterId: string;
  aggregation: Aggregation;
  /** The meter's own group-by keys to keep apart (identifiers: checked against the meter). */
  groupBy: readonly string[];
  bySubject: boolean;
  filters: GroupFilters;
  /**
   * The first UTC day whose day rows may be read (`retentionDaysFrom`); earlier days are read from
   * 15-minute rows, which the retention cron may have deleted in part. Default: every day.
   */
  daysFrom?: number;
}

/**
 * Day rows are read from the day after the retention cutoff on: a cron run that started later than the
 * report may already prune the cutoff's own day, and it deletes a day's 15-minute rows first.
 */
export function retentionDaysFrom(now: number, retentionDays: number): number {
  return dayOf(now - retentionDays * DAY_MS) + DAY_MS;
}

/** One (window, subject, group) of the answer, folded by D1. UNIQUE_COUNT puts its distinct count in `count`. */
export interface SnapshotPartial extends Aggregates {
  win: number;
  subject: string | null;
  /** JSON object of the `groupBy` keys, in that order. */
  grp: string;
}


/** First and last row start holding data for the meter in [from, to): two index seeks. */
export async function snapshotExtent(db: Db, namespace: string, meterId: string, from: number | null, to: number): Promise<{ first: number; last: number } | null> {
  const range = sql`namespace = ${namespace} AND meter_id = ${meterId} AND window_start >= ${from ?? Number.MIN_SAFE_INTEGER} AND window_start < ${to}`;
  const rows = await db.all<{ first: number | null; last: number | null }>(
    sql`SELECT (SELECT min(window_start) FROM usage_snapshots WHERE ${range}) AS first, (SELECT max(window_start) FROM usage_snapshots WHERE ${range}) AS last`,
  );
  const r = rows[0];
  return r && r.first !== null && r.last !== null ? { first: r.first, last: r.last } : null;
}

/**
 * Folds snapshot rows into windows, subjects and groups inside D1, so what crosses the wire is the
 * answer, not every row; null when the answer has more than `maxRows` rows. Each window is read as
 * its whole UTC days from `q.daysFrom` on from day rows and the rest from 15-minute rows (one seek per
 * part); `daysFrom: Infinity` reads 15-minute rows only, the reference the day rows are tested against.
 * SUM/COUNT add, MIN/MAX keep extremes, AVG travels as sum and count, LATEST takes the value with
 * the latest event time — ties go to the greater raw group key, as the per-subject fold over
 * (minute, group_key)-ordered buckets does — and UNIQUE_COUNT counts distinct values over the union
 * of the rows' stored values (distinct counts do not add up).
 */
export async function snapshotUsage(db: Db, q: SnapshotQuery, windows: readonly { from: number; to: number }[], maxRows: number): Promise<SnapshotPartial[] | null> {
  let out: SnapshotPartial[] = [];
  for (let start = 0; start < windows.length; start += WINDOWS_PER_STATEMENT) {
    // A window's parts stay in one statement, which folds them into its row of the answer.
    const granules: [number, number, number][] = [];
    const days: [number, number, number][] = [];
    windows.slice(start, start + WINDOWS_PER_STATEMENT).forEach((w, j) => {
      if (q.aggregation === "UNIQUE_COUNT") return granules.push([start + j, w.from, w.to]);
      const parts = splitByDays(w.from, w.to, q.daysFrom);
      for (const [from, to] of parts.granules) granules.push([start + j, from, to]);
      for (const [from, to] of parts.days) days.push([start + j, from, to]);
    });
    // Each partial is one row of the answer: one more than is left says the answer is too large.
    const statement = usageStatement(q, JSON.stringify(granules), JSON.stringify(days));
    out = out.concat(await db.all<SnapshotPartial>(sql`SELECT * FROM (${statement}) LIMIT ${maxRows - out.length + 1}`));
    if (out.length > maxRows) return null;
  }
  return out;
}

/** Windows per statement: each is at most three parts of ~35 bytes of JSON, well inside one bound string. */
const WINDOWS_PER_STATEMENT = 5_000;

/** `granulesJson` and `daysJson`: [window index, from, to] parts read from 15-minute rows and from day rows (never UNIQUE_COUNT's). */
function usageStatement(q: SnapshotQuery, granulesJson: string, daysJson: string): SQL {
  const unique = q.aggregation === "UNIQUE_COUNT";
  const grp = sql`json_object(${sql.join(
    q.groupBy.map((k) => sql`${k}, json_extract(s.group_key, ${path(k)})`),
    sql`, `,
  )})`;
  const subject = q.bySubject ? sql`s.subject` : sql`NULL`;
  // The path is inlined (an identifier, checked by path()) so that each filter operator binds one parameter only.
  const where = q.filters.length ? sql`WHERE ${groupFilterSql(q.filters, (k) => sql.raw(`json_extract(s.group_key, '${path(k)}')`))}` : sql``;

  if (unique) {
    return sql`SELECT w.value->>0 AS win, ${subject} AS subject, ${grp} AS grp, 0 AS sum, count(DISTINCT s.value) AS count,
        NULL AS min, NULL AS max, 0 AS latest_at, NULL AS latest
      FROM ${inParts("usage_snapshot_uniques", "window_start", q.namespace, q.meterId, granulesJson)}
      ${where} GROUP BY 1, 2, 3`;
  }
  // Both sources are one relation before the group-by keys and filters apply, so their parameters are
  // bound once: twice, 20 group-by keys and 50 filter operators would pass D1's 100 per statement.
  const part = (table: string, start: string, parts: string) => sql`SELECT w.value->>0 AS win, s.subject AS subject, s.group_key AS group_key,
      s.sum AS sum, s.count AS count, s.min AS min, s.max AS max, s.latest_at AS latest_at, s.latest AS latest
    FROM ${inParts(table, start, q.namespace, q.meterId, parts)}`;
  const base = sql`SELECT s.win AS win, ${subject} AS subj, ${grp} AS grp, s.group_key AS gk, s.subject AS raw_subject,
      s.sum AS v_sum, s.count AS v_count, s.min AS v_min, s.max AS v_max, s.latest_at AS v_latest_at, s.latest AS v_latest
    FROM (${part("usage_snapshots", "window_start", granulesJson)} UNION ALL ${part("usage_snapshot_days", "day_start", daysJson)}) AS s
    ${where}`;
  if (q.aggregation !== "LATEST") {
    return sql`SELECT win AS win, subj AS subject, grp, sum(v_sum) AS sum, sum(v_count) AS count, min(v_min) AS min, max(v_max) AS max,
        max(v_latest_at) AS latest_at, NULL AS latest
      FROM (${base}) GROUP BY win, subj, grp`;
  }
  return sql`SELECT win AS win, subj AS subject, grp, sum(v_sum) AS sum, sum(v_count) AS count, min(v_min) AS min, max(v_max) AS max,
      max(v_latest_at) AS latest_at, max(CASE WHEN rn = 1 THEN v_latest END) AS latest
    FROM (SELECT *, row_number() OVER (PARTITION BY win, subj, grp ORDER BY v_latest_at DESC, gk DESC, raw_subject DESC) AS rn FROM (${base}))
    GROUP BY win, subj, grp`;
}

export interface SnapshotFreshness {
  /** Subjects that owe D1 a flush: their last one was capped, or they have not flushed since they first stored usage. */
  pending: number;
  /** The earliest `as_of` among those: their usage counted before it is in D1. */
  oldestPendingAsOf: number | null;
  /** Pending subjects that have not flushed since `overdueBefore` (or, never flushed, registered before it). */
  overdue: number;
}

/** Reads the namespace's flush state through the partial index that holds only pending rows. */
export async function snapshotFreshness(db: Db, namespace: string, overdueBefore: number): Promise<SnapshotFreshness> {
  const rows = await db.all<{ pending: number; oldest_pending: number | null; overdue: number }>(sql`SELECT count(*) AS pending, min(as_of) AS oldest_pending,
      count(CASE WHEN flushed_at < ${overdueBefore} THEN 1 END) AS overdue
    FROM snapshot_subjects WHERE namespace = ${namespace} AND pending = 1`);
  const r = rows[0]!;
  return { pending: r.pending, oldestPendingAsOf: r.oldest_pending, overdue: r.overdue };
}

/**
 * The meter's rows of `table` whose `start` lies in one of `parts` (JSON of [index, from, to], the
 * index read as `w.value->>0`): one key seek per part, driven by the list (CROSS JOIN fixes the order).
 */
function inParts(table: string, start: string, namespace: string, meterId: string, parts: string): SQL {
  return sql`json_each(${parts}) AS w CROSS JOIN ${sql.raw(table)} AS s
    ON s.namespace = ${namespace} AND s.meter_id = ${meterId} AND s.${sql.raw(start)} >= w.value->>1 AND s.${sql.raw(start)} < w.value->>2`;
}

/**
 * `column` of the meter's snapshot rows whose 15 minutes start in [from, to] (both inclusive, as
 * OpenMeter's lists): the whole UTC days from `daysFrom` on from day rows, the rest from 15-minute rows
 * (`daysFrom = Infinity`: 15-minute rows only, the reference the day rows are tested against).
 */
function rowsIn(namespace: string, meterId: string, from: number, to: number, daysFrom: number, column: SQL): SQL {
  const start = Math.ceil(from / GRANULE_MS) * GRANULE_MS;
  const end = granuleOf(to) + GRANULE_MS;
  const parts = start < end ? splitByDays(start, end, daysFrom) : { days: [], granules: [] };
  const part = (table: string, at: string, list: [number, number][]) =>
    sql`SELECT ${column} AS v FROM ${inParts(table, at, namespace, meterId, JSON.stringify(list.map(([a, b]) => [0, a, b])))}`;
  return sql`${part("usage_snapshots", "window_start", parts.granules)} UNION ALL ${part("usage_snapshot_days", "day_start", parts.days)}`;
}

/** Subjects with snapshot rows for the meter whose 15 minutes start in [from, to] (both inclusive, as OpenMeter's). */
export async function meterSubjects(db: Db, namespace: string, meterId: string, from: number, to: number, daysFrom = -Infinity): Promise<string[]> {
  const rows = await db.all<{ v: string }>(sql`SELECT DISTINCT v FROM (${rowsIn(namespace, meterId, from, to, daysFrom, sql`s.subject`)}) ORDER BY v`);
  return rows.map((r) => r.v);
}

/** The distinct non-null values of one group-by key in snapshot rows starting in [from, to]. */
export async function groupByValues(db: Db, namespace: string, meterId: string, key: string, from: number, to: number, daysFrom = -Infinity): Promise<string[]> {
  const value = sql`json_extract(s.group_key, ${path(key)})`;
  const rows = await db.all<{ v: string }>(sql`SELECT DISTINCT v FROM (${rowsIn(namespace, meterId, from, to, daysFrom, value)}) WHERE v IS NOT NULL ORDER BY v`);
  return rows.map((r) => String(r.v));
}
