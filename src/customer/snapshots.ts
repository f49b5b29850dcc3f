import { database } from "../db/client";
import { appliedSeq, writeFlush, type FlushWrite, type SubjectFlush } from "../db/snapshots";
import { jsonChunks } from "../domain/chunks";
import type { BucketAccumulator } from "../domain/metering";
import { foldGranules, granuleOf, GRANULE_MS, type MinuteBucket } from "../domain/rollup";
import { settings, type Env } from "../env";
import type { Identity } from "./do";
import type { Jobs } from "./jobs";
import { getMeta, setMeta } from "./schema";
import type { Sql } from "./sql";

/**
 * The Durable Object's side of D1 snapshots. `snapshot_windows` has one row per (meter, 15-minute
 * window) this DO has counted in: `version` grows with every change, `flushed` is the version D1
 * last received, so a window is unflushed while version > flushed. A flush reads the unflushed
 * windows, sends their rows (absolute values) to D1, then raises `flushed` to the version it read:
 * a change that lands while the flush awaits D1 raises `version` past it and stays unflushed.
 */

/** Bounds one flush (D1 statement time, Worker memory); the rest follows a second later. */
export const MAX_WINDOWS_PER_FLUSH = 2_000;
export const MAX_ROWS_PER_FLUSH = 50_000;
const AGAIN_SOON_MS = 1_000;
const RETRY_MIN_MS = 10_000;

export interface FlushReport {
  seq: number;
  windows: number;
  rows: number;
  uniques: number;
  /** D1 statements and rows written (meta.rows_written, indexes included). */
  statements: number;
  rowsWritten: number;
  /** D1's own time for the batch (meta.duration summed). */
  d1Ms: number;
  applied: boolean;
  error?: string;
  /** Unflushed windows remain (more than one flush carries, or changes during the write). */
  left: boolean;
  /** When the flush job should run next; null when nothing is left. */
  next: number | null;
}

/** The windows marked since the last flush read them (Sql.memo: dropped with any rollback). */
const MARKED = "snapshot-windows:marked";
/** The next flush's number, stored and not sent yet (Sql.memo: a rollback may have undone its write). */
const RESERVED_SEQ = "snapshot-seq:reserved";

/**
 * Marks the windows a batch changed: one upsert of a row per (meter, window), inside the caller's
 * transaction. A window already marked since the last flush read is still unflushed, so it is not
 * written again: with one event per request this was one of four rows written per event.
 */
export function markChanged(sql: Sql, deltas: readonly { meterId: string; minute: number }[]): void {
  const marked = sql.memo(MARKED, () => new Set<string>());
  const pairs = new Map<string, [string, number]>();
  for (const d of deltas) {
    const w = granuleOf(d.minute);
    const key = `${d.meterId}\u0000${w}`;
    if (!marked.has(key)) pairs.set(key, [d.meterId, w]);
  }
  if (pairs.size === 0) return;
  for (const key of pairs.keys()) marked.add(key);
  for (const chunk of jsonChunks([...pairs.values()])) {
    sql.exec(
      `INSERT INTO snapshot_windows (meter_id, window_start, version, flushed, reset)
       SELECT value->>0, value->>1, 1, 0, 0 FROM json_each(?) WHERE true
       ON CONFLICT (meter_id, window_start) DO UPDATE SET version = version + 1`,
      chunk,
    );
  }
}

/**
 * Before a meter's buckets from `fromMinute` on are dropped (re-metering, or the meter is gone):
 * their windows are marked changed and `reset`, so the next flush replaces their D1 rows whole —
 * group-by values that no longer occur must disappear there too.
 */
export function markDropped(sql: Sql, meterId: string, fromMinute: number): void {
  sql.exec(
    `INSERT INTO snapshot_windows (meter_id, window_start, version, flushed, reset)
     SELECT DISTINCT meter_id, (minute / ${GRANULE_MS}) * ${GRANULE_MS}, 1, 0, 1 FROM buckets WHERE meter_id = ? AND minute >= ?
     ON CONFLICT (meter_id, window_start) DO UPDATE SET version = version + 1, reset = 1`,
    meterId,
    fromMinute,
  );
}

/**
 * The prune job's part: windows older than event retention can no longer change by ingest, and a
 * re-meter that reaches back that far recreates their rows as unflushed, so forgetting the flushed
 * ones loses nothing. Hourly with the prune, not in every flush: one statement less per flush.
 */
export function forgetOldWindows(sql: Sql, now: number, retentionMs: number): void {
  sql.exec("DELETE FROM snapshot_windows WHERE version = flushed AND window_start < ?", granuleOf(now - retentionMs) - GRANULE_MS);
}

/**
 * The number the next flush sends under, stored before it is sent (write-ahead) and used once: a D1
 * write that failed unclearly, or an object reset while it awaited D1, never sends a second flush
 * under a number D1 may already hold. The first counted batch after a flush reserves it, in the
 * transaction it commits anyway, so that the flush's read writes nothing: one storage commit (an
 * fsync, locally) less per flush. A flush with no batch before it reserves in its read.
 */
export function reserveFlushSeq(sql: Sql): number {
  return sql.memo(RESERVED_SEQ, () => {
    const seq = Number(getMeta<number>(sql, "snapshot_seq") ?? 0) + 1;
    setMeta(sql, "snapshot_seq", seq);
    return seq;
  });
}

export function hasUnflushed(sql: Sql): boolean {
  return sql.one("SELECT 1 AS x FROM snapshot_windows WHERE version > flushed LIMIT 1") !== undefined;
}

interface DirtyWindow extends Record<string, SqlStorageValue> {
  meter_id: string;
  window_start: number;
  version: number;
  reset: number;
}

export class SnapshotFlusher {
  // Flushes never overlap (alarm and cron nudge may ask at once): each waits for the one before.
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sql: Sql,
    private readonly jobs: Jobs,
    private readonly env: Env,
    private readonly identity: () => Identity | undefined,
  ) {}

  /** Inside the ingest transaction: one upsert for the batch's windows, and the flush job if not yet due. */
  changed(buckets: BucketAccumulator, now: number): void {
    if (buckets.size === 0) return;
    markChanged(this.sql, buckets.deltas());
    reserveFlushSeq(this.sql);
    this.jobs.due("flush", now + this.intervalMs());
  }

  /**
   * After a definition change (inside its transaction): re-metered windows must reach D1 even if no
   * batch follows, so the job is made due and the alarm armed once the transaction has returned.
   */
  afterConfig(now: number): void {
    if (!hasUnflushed(this.sql)) return;
    this.jobs.due("flush", now + this.intervalMs());
    queueMicrotask(() => void this.jobs.arm().catch((e) => console.error("snapshot flush: arming the alarm failed", e)));
  }

  /**
   * The alarm's `flush` job. While flushes carry data the job stays due one interval on, so the
   * batches in between neither write its row nor move the alarm: with steady traffic that is one
   * setAlarm per interval instead of two (each a storage commit). The first run with nothing to
   * send ends it. A change still reaches D1 at most one interval after it was made.
   */
  async job(): Promise<number | null> {
    const report = await this.flush(false);
    if (report.next === null && report.windows > 0 && report.applied) return Date.now() + this.intervalMs();
    return report.next;
  }

  /** The cron's nudge: flush now, writing the state row even with nothing to send, and keep the alarm for what is left. */
  async nudge(): Promise<FlushReport> {
    const report = await this.flush(true);
    if (report.next !== null) this.jobs.due("flush", report.next);
    await this.jobs.arm();
    return report;
  }

  flush(force: boolean): Promise<FlushReport> {
    const run = this.chain.then(() => this.run(Date.now(), force));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private intervalMs(): number {
    return settings(this.env).SNAPSHOT_INTERVAL_SECONDS * 1000;
  }

  private async run(now: number, force: boolean): Promise<FlushReport> {
    const report: FlushReport = { seq: 0, windows: 0, rows: 0, uniques: 0, statements: 0, rowsWritten: 0, d1Ms: 0, applied: false, left: false, next: null };
    const id = this.identity();
    if (!id) return report;
    const read = this.sql.transaction(() => this.read(id, now, force));
    if (!read) return report;
    const { flush, windows } = read;
    Object.assign(report, { seq: flush.seq, windows: windows.length, rows: flush.rows.length, uniques: flush.uniques.length });

    const db = database(this.env.DB);
    let write: FlushWrite;
    try {
      write = await writeFlush(db, flush);
    } catch (e) {
      // Expected now and then (D1 unavailable): the windows stay unflushed and the job tries again.
      console.error(`snapshot flush of ${id.namespace}/${id.subject} failed; retrying`, e);
      return { ...report, error: String(e), left: true, next: Date.now() + Math.max(this.intervalMs(), RETRY_MIN_MS) };
    }
    Object.assign(report, write);
    if (!write.applied) {
      // D1 holds a newer flush than this DO remembers sending (its storage was restored to an
      // earlier point): continue after D1's sequence and resend every window whole.
      const seq = await appliedSeq(db, id.namespace, id.subject);
      console.error(`snapshot flush of ${id.namespace}/${id.subject}: D1 is at seq ${seq}, this DO at ${flush.seq}; resending all windows`);
      this.sql.transaction(() => {
        // A number reserved meanwhile may be at or below D1's: the next flush reserves above it.
        this.sql.forget(RESERVED_SEQ);
        setMeta(this.sql, "snapshot_seq", Math.max(seq, flush.seq));
        this.sql.exec("UPDATE snapshot_windows SET version = version + 1, reset = 1");
      });
      return { ...report, left: true, next: Date.now() + AGAIN_SOON_MS };
    }

    this.sql.transaction(() => {
      for (const chunk of jsonChunks(windows.map((w) => [w.meter_id, w.window_start, w.version]))) {
        this.sql.exec(
          `UPDATE snapshot_windows SET flushed = max(flushed, f.v), reset = CASE WHEN version = f.v THEN 0 ELSE reset END
           FROM (SELECT value->>0 AS m, value->>1 AS w, value->>2 AS v FROM json_each(?)) AS f
           WHERE meter_id = f.m AND window_start = f.w`,
          chunk,
        );
      }
    });
    const left = hasUnflushed(this.sql);
    report.left = left;
    report.next = !left ? null : flush.pending ? Date.now() + AGAIN_SOON_MS : Date.now() + this.intervalMs();
    if (write.statements > 1 && settings(this.env).LOG_SNAPSHOT_FLUSHES) {
      // One line per flush that carried data: the figures bench/snapshot-lag.mjs sums up.
      console.log(JSON.stringify({ msg: "snapshot flush", namespace: id.namespace, subject: id.subject, ...report, ms: Date.now() - now }));
    }
    return report;
  }

  /** The read half of a flush, in one synchronous transaction: what D1 will get, as of `now`. */
  private read(id: Identity, now: number, force: boolean): { flush: SubjectFlush; windows: DirtyWindow[] } | null {
    // What changes from here on must raise `version` past what this flush reads, so it is marked again.
    this.sql.forget(MARKED);
    const dirty = this.sql.all<DirtyWindow>(
      "SELECT meter_id, window_start, version, reset FROM snapshot_windows WHERE version > flushed ORDER BY window_start, meter_id LIMIT ?",
      MAX_WINDOWS_PER_FLUSH + 1,
    );
    if (dirty.length === 0 && !force) return null;
    let more = dirty.length > MAX_WINDOWS_PER_FLUSH;
    let windows = dirty.slice(0, MAX_WINDOWS_PER_FLUSH);

    const list = windows.map((w) => [w.meter_id, w.window_start]);
    const buckets: MinuteBucket[] = [];
    const uniques: SubjectFlush["uniques"] = [];
    for (const chunk of jsonChunks(list)) {
      buckets.push(
        ...this.sql.all<MinuteBucket & Record<string, SqlStorageValue>>(
          `SELECT b.meter_id, b.minute, b.group_key, b.sum, b.count, b.min, b.max, b.latest_at, b.latest
           FROM json_each(?) AS w CROSS JOIN buckets AS b
           ON b.meter_id = w.value->>0 AND b.minute >= w.value->>1 AND b.minute < w.value->>1 + ${GRANULE_MS}
           ORDER BY b.meter_id, b.minute, b.group_key`,
          chunk,
        ),
      );
      for (const u of this.sql.all<{ meter_id: string; window_start: number; group_key: string; value: string }>(
        `SELECT DISTINCT u.meter_id, w.value->>1 AS window_start, u.group_key, u.value
         FROM json_each(?) AS w CROSS JOIN uniques AS u
         ON u.meter_id = w.value->>0 AND u.minute >= w.value->>1 AND u.minute < w.value->>1 + ${GRANULE_MS}`,
        chunk,
      )) {
        uniques.push({ meterId: u.meter_id, windowStart: u.window_start, groupKey: u.group_key, value: u.value });
      }
    }
    let rows = foldGranules(buckets);
    let uniqueRows = uniques;

    if (rows.length + uniques.length > MAX_ROWS_PER_FLUSH) {
      // Keep whole windows, in order, up to the budget (at least one); the rest is the next flush's.
      const per = new Map<string, number>();
      const key = (m: string, w: number) => `${m}\u0000${w}`;
      for (const r of rows) per.set(key(r.meterId, r.windowStart), (per.get(key(r.meterId, r.windowStart)) ?? 0) + 1);
      for (const u of uniques) per.set(key(u.meterId, u.windowStart), (per.get(key(u.meterId, u.windowStart)) ?? 0) + 1);
      let total = 0;
      let keep = 0;
      while (keep < windows.length) {
        const n = per.get(key(windows[keep]!.meter_id, windows[keep]!.window_start)) ?? 0;
        if (keep > 0 && total + n > MAX_ROWS_PER_FLUSH) break;
        total += n;
        keep++;
      }
      windows = windows.slice(0, keep);
      more = true;
      const kept = new Set(windows.map((w) => key(w.meter_id, w.window_start)));
      rows = rows.filter((r) => kept.has(key(r.meterId, r.windowStart)));
      uniqueRows = uniques.filter((u) => kept.has(key(u.meterId, u.windowStart)));
    }

    const seq = reserveFlushSeq(this.sql);
    this.sql.forget(RESERVED_SEQ);
    return {
      windows,
      flush: {
        namespace: id.namespace,
        subject: id.subject,
        seq,
        asOf: now,
        flushedAt: now,
        pending: more,
        windows: windows.map((w) => ({ meterId: w.meter_id, windowStart: w.window_start, reset: w.reset === 1 })),
        rows,
        uniques: uniqueRows,
      },
    };
  }
}
