import { and, eq, sql, type SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { jsonChunks } from "../domain/chunks";
import { DAY_MS, dayOf, GRANULE_MS, type GranuleRow } from "../domain/rollup";
import type { Db } from "./client";
import { snapshotSubjects } from "./schema";

/** What one Durable Object flush sends: every row of the windows it names, as absolute values. */
export interface SubjectFlush {
  namespace: string;
  subject: string;
  /** Increases with every flush of this subject: D1 applies a flush only if it is newer than the last. */
  seq: number;
  /** When the DO read what it sends. */
  asOf: number;
  flushedAt: number;
  /** The DO had more changed windows than one flush carries. */
  pending: boolean;
  /** `reset`: the DO dropped and rebuilt the window (meter changed), so its old D1 rows are replaced, not upserted. */
  windows: { meterId: string; windowStart: number; reset: boolean }[];
  rows: GranuleRow[];
  uniques: { meterId: string; windowStart: number; groupKey: string; value: string }[];
}

export interface FlushWrite {
  /** False when D1 already holds this flush or a newer one: then nothing was written. */
  applied: boolean;
  statements: number;
  /** Sum of D1's meta.rows_written over the batch (index rows included): what D1 bills. */
  rowsWritten: number;
  /**
   * Sum of D1's meta.duration (ms executing the statements): a D1 database runs one query at a time,
   * so this bounds how many flushes per second one database can take (docs/snapshots.md, "Capacity").
   */
  d1Ms: number;
}

/**
 * Applies a flush as one D1 batch (one transaction). Every statement carries the same guard —
 * no newer flush of this subject has been applied — so a replayed or delayed flush is a no-op as a
 * whole, never half-applied over newer values. Rows travel as JSON through `json_each(?)`: a few
 * bound parameters per statement however many rows (D1 allows 100), chunked below 1 MB per string.
 */
export async function writeFlush(db: Db, f: SubjectFlush): Promise<FlushWrite> {
  const { namespace: ns, subject } = f;
  const fresh = sql`NOT EXISTS (SELECT 1 FROM snapshot_subjects WHERE namespace = ${ns} AND subject = ${subject} AND seq >= ${f.seq})`;
  const statements: SQL[] = [];

  const resets = f.windows.filter((w) => w.reset).map((w) => [w.meterId, w.windowStart]);
  for (const chunk of jsonChunks(resets)) {
    for (const table of ["usage_snapshots", "usage_snapshot_uniques"]) {
      // Driven by the window list (CROSS JOIN fixes the loop order): each window is one key-prefix seek.
      statements.push(sql`DELETE FROM ${sql.raw(table)} WHERE rowid IN (
          SELECT s.rowid FROM json_each(${chunk}) AS w CROSS JOIN ${sql.raw(table)} AS s
          ON s.namespace = ${ns} AND s.meter_id = w.value->>0 AND s.window_start = w.value->>1 AND s.subject = ${subject})
        AND ${fresh}`);
    }
  }

  const rows = f.rows.map((r) => [r.meterId, r.windowStart, r.groupKey, r.sum, r.count, r.min, r.max, r.latestAt, r.latest]);
  for (const chunk of jsonChunks(rows)) {
    // An unchanged row is not rewritten (the DO tracks changes per window, not per group).
    statements.push(sql`INSERT INTO usage_snapshots (namespace, meter_id, window_start, subject, group_key, sum, count, min, max, latest_at, latest)
      SELECT ${ns}, value->>0, value->>1, ${subject}, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8
      FROM json_each(${chunk}) WHERE ${fresh}
      ON CONFLICT (namespace, meter_id, window_start, subject, group_key) DO UPDATE SET
        sum = excluded.sum, count = excluded.count, min = excluded.min, max = excluded.max,
        latest_at = excluded.latest_at, latest = excluded.latest
      WHERE count IS NOT excluded.count OR sum IS NOT excluded.sum OR min IS NOT excluded.min
        OR max IS NOT excluded.max OR latest_at IS NOT excluded.latest_at OR latest IS NOT excluded.latest`);
  }

  const uniques = f.uniques.map((u) => [u.meterId, u.windowStart, u.groupKey, u.value]);
  for (const chunk of jsonChunks(uniques)) {
    statements.push(sql`INSERT INTO usage_snapshot_uniques (namespace, meter_id, window_start, subject, group_key, value)
      SELECT ${ns}, value->>0, value->>1, ${subject}, value->>2, value->>3 FROM json_each(${chunk}) WHERE ${fresh}
      ON CONFLICT DO NOTHING`);
  }

  statements.push(...dayStatements(f, fresh));

  statements.push(
    sql`INSERT INTO snapshot_subjects (namespace, subject, seq, as_of, flushed_at, pending)
      VALUES (${ns}, ${subject}, ${f.seq}, ${f.asOf}, ${f.flushedAt}, ${f.pending ? 1 : 0})
      ON CONFLICT (namespace, subject) DO UPDATE SET
        seq = excluded.seq, as_of = excluded.as_of, flushed_at = excluded.flushed_at, pending = excluded.pending
      WHERE excluded.seq > snapshot_subjects.seq`,
  );
  // The state row goes last: the guard above reads the previous seq until the batch commits it.
  const results = await db.$client.batch(statements.map((s) => prepare(db, s)));
  const last = results[results.length - 1]!;
  return {
    applied: (last.meta.changes ?? 0) > 0,
    statements: results.length,
    rowsWritten: results.reduce((n, r) => n + (r.meta.rows_written ?? 0), 0),
    d1Ms: results.reduce((n, r) => n + (r.meta.duration ?? 0), 0),
  };
}

/** The offsets of a day's 96 rows from its start: each day row is rebuilt by one seek per 15-minute row. */
const GRANULE_OFFSETS = JSON.stringify(Array.from({ length: DAY_MS / GRANULE_MS }, (_, i) => i * GRANULE_MS));

/**
 * Rebuilds the subject's day rows of every UTC day the flush touched from that day's 15-minute rows, as
 * they stand after the statements before these: a rebuild rather than an increment, so that a day row
 * is exactly what its 15-minute rows fold to, whatever order flushes arrived in. A day holding a reset
 * window loses its rows first (group-by values that no longer occur). Unchanged rows are not rewritten.
 */
function dayStatements(f: SubjectFlush, fresh: SQL): SQL[] {
  const { namespace: ns, subject } = f;
  const days = new Map<string, [string, number]>();
  const resets = new Map<string, [string, number]>();
  for (const w of f.windows) {
    const day: [string, number] = [w.meterId, dayOf(w.windowStart)];
    days.set(day.join("\u0000"), day);
    if (w.reset) resets.set(day.join("\u0000"), day);
  }
  const statements: SQL[] = [];
  for (const chunk of jsonChunks([...resets.values()])) {
    statements.push(sql`DELETE FROM usage_snapshot_days WHERE rowid IN (
        SELECT s.rowid FROM json_each(${chunk}) AS d CROSS JOIN usage_snapshot_days AS s
        ON s.namespace = ${ns} AND s.meter_id = d.value->>0 AND s.day_start = d.value->>1 AND s.subject = ${subject})
      AND ${fresh}`);
  }
  for (const chunk of jsonChunks([...days.values()])) {
    statements.push(sql`INSERT INTO usage_snapshot_days (namespace, meter_id, day_start, subject, group_key, sum, count, min, max, latest_at, latest)
      SELECT ${ns}, meter, day, ${subject}, gk, sum(v_sum), sum(v_count), min(v_min), max(v_max), max(v_latest_at), max(CASE WHEN rn = 1 THEN v_latest END)
      FROM (SELECT d.value->>0 AS meter, d.value->>1 AS day, s.group_key AS gk, s.sum AS v_sum, s.count AS v_count, s.min AS v_min, s.max AS v_max,
              s.latest_at AS v_latest_at, s.latest AS v_latest,
              row_number() OVER (PARTITION BY d.value->>0, d.value->>1, s.group_key ORDER BY s.latest_at DESC) AS rn
            FROM json_each(${chunk}) AS d CROSS JOIN json_each(${GRANULE_OFFSETS}) AS o CROSS JOIN usage_snapshots AS s
            ON s.namespace = ${ns} AND s.meter_id = d.value->>0 AND s.window_start = d.value->>1 + o.value AND s.subject = ${subject})
      WHERE ${fresh}
      GROUP BY meter, day, gk
      ON CONFLICT (namespace, meter_id, day_start, subject, group_key) DO UPDATE SET
        sum = excluded.sum, count = excluded.count, min = excluded.min, max = excluded.max,
        latest_at = excluded.latest_at, latest = excluded.latest
      WHERE count IS NOT excluded.count OR sum IS NOT excluded.sum OR min IS NOT excluded.min
        OR max IS NOT excluded.max OR latest_at IS NOT excluded.latest_at OR latest IS NOT excluded.latest`);
  }
  return statements;
}

const dialect = new SQLiteAsyncDialect();

/**
 * A drizzle `sql` fragment as a D1 statement of the guarded binding: drizzle's own batch() cannot
 * bind raw statements that carry parameters (0.45), and these are all raw set-based SQL.
 */
function prepare(db: Db, q: SQL): D1PreparedStatement {
  const { sql: text, params } = dialect.sqlToQuery(q);
  return db.$client.prepare(text).bind(...params);
}

/** The last flush sequence D1 applied for the subject (0 if none): a DO whose own counter fell behind resumes from it. */
export async function appliedSeq(db: Db, namespace: string, subject: string): Promise<number> {
  const rows = await db
    .select({ seq: snapshotSubjects.seq })
    .from(snapshotSubjects)
    .where(and(eq(snapshotSubjects.namespace, namespace), eq(snapshotSubjects.subject, subject)));
  return rows[0]?.seq ?? 0;
}

export interface OverdueSubject {
  namespace: string;
  subject: string;
}

/**
 * A customer's Durable Object has just stored something (its first write, src/customer/subject.ts):
 * D1 learns that the subject owes a first flush, as a pending state row of seq 0 (any real flush
 * is newer). Freshness and the cron then find never-flushed subjects through the pending index,
 * instead of scanning `subjects`, where rows created through the subjects API have no usage to flush.
 */
export function owesFirstFlush(db: Db, namespace: string, subject: string, now: number) {
  // Over a never-flushed row too: one the cron cleared because the object had stored nothing yet.
  // A row still owed keeps the earlier time it is owed since (a registration run again, its first
  // answer lost, must not claim the usage before it is in D1); flushed_at moves on all the same, so
  // a cron that found the object empty just before this first write does not clear the row.
  return db
    .insert(snapshotSubjects)
    .values({ namespace, subject, seq: 0, asOf: now, flushedAt: now, pending: 1 })
    .onConflictDoUpdate({
      target: [snapshotSubjects.namespace, snapshotSubjects.subject],
      set: { asOf: sql`CASE WHEN ${snapshotSubjects.pending} = 1 THEN min(${snapshotSubjects.asOf}, excluded.as_of) ELSE excluded.as_of END`, flushedAt: now, pending: 1 },
      setWhere: sql`${snapshotSubjects.seq} = 0`,
    });
}

/**
 * Subjects whose snapshot is late, for the cron to nudge: pending (their last flush left more to
 * send, or they never flushed) and not flushed since `before`. Picked at random: a subject whose
 * nudge keeps failing must not hold the others back run after run.
 */
export async function overdueSubjects(db: Db, before: number, limit: number): Promise<OverdueSubject[]> {
  return db.all<OverdueSubject>(sql`SELECT namespace, subject FROM snapshot_subjects WHERE pending = 1 AND flushed_at < ${before} ORDER BY random() LIMIT ${limit}`);
}

/**
 * Nudged Durable Objects that have never stored anything (state rows that migration 0012 wrote for
 * subjects created through the API, or objects whose storage was reset after a flush that left more
 * to send, seq > 0): nothing to flush. Only rows still overdue (`before`, as when they were picked)
 * are cleared: a first write registered since the nudge has marked its row again, and a flush applied
 * since has written its own.
 */
export async function owesNothing(db: Db, ids: readonly OverdueSubject[], before: number, now: number): Promise<void> {
  if (ids.length === 0) return;
  await db.run(sql`UPDATE snapshot_subjects SET pending = 0, flushed_at = ${now}
    WHERE flushed_at < ${before}
      AND (namespace, subject) IN (SELECT value->>0, value->>1 FROM json_each(${JSON.stringify(ids.map((id) => [id.namespace, id.subject]))}))`);
}

/**
 * Deletes snapshot rows whose window (or day) started before `cutoff`, a UTC day's start so that a day
 * row goes with the 15-minute rows it folds; at most `perStatement` rows per
 * statement and `maxStatements` statements per call (D1 caps queries per invocation and statement
 * time); the next cron run continues. Walks `meters` (soft-deleted ones included, so their rows
 * age out too) and each meter's key prefix, instead of an index on window_start that every new
 * row would pay a write for. Returns the rows deleted per table.
 */
export async function pruneSnapshots(db: Db, cutoff: number, perStatement = 5_000, maxStatements = 20): Promise<{ rows: number; uniques: number; days: number }> {
  const out = { rows: 0, uniques: 0, days: 0 };
  let budget = maxStatements;
  const tables = [["usage_snapshots", "window_start", "rows"], ["usage_snapshot_uniques", "window_start", "uniques"], ["usage_snapshot_days", "day_start", "days"]] as const;
  for (const [table, start, key] of tables) {
    while (budget-- > 0) {
      const r = (await db.run(sql`DELETE FROM ${sql.raw(table)} WHERE rowid IN (
          SELECT s.rowid FROM meters AS m CROSS JOIN ${sql.raw(table)} AS s
          ON s.namespace = m.namespace AND s.meter_id = m.id AND s.${sql.raw(start)} < ${cutoff}
          LIMIT ${perStatement})`)) as unknown as D1Result;
      const n = r.meta.changes ?? 0;
      out[key] += n;
      if (n < perStatement) break;
    }
  }
  return out;
}
