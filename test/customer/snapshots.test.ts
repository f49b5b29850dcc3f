import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { Jobs } from "../../src/customer/jobs";
import { markChanged, reserveFlushSeq, SnapshotFlusher } from "../../src/customer/snapshots";
import { Sql } from "../../src/customer/sql";
import { database } from "../../src/db/client";
import { StatementLimitError } from "../../src/db/guard";
import { writeFlush, type SubjectFlush } from "../../src/db/snapshots";
import { usageSnapshots } from "../../src/db/schema";
import { GRANULE_MS, granuleOf } from "../../src/domain/rollup";
import { MINUTE, api, createMeter, customerStub, event, ingestOk, iso, uid } from "../helpers/api";

const NS = "default";
async function flush(subject: string) {
  const report = await customerStub(subject).flushSnapshots({ namespace: NS, subject });
  if (!report) throw new Error(`${subject} has no Durable Object state`);
  return report;
}

/**
 * A flush of `subject` whose D1 write is held until `release()`: resolves once the flush has read
 * and sent, with `pending` its report.
 */
async function heldFlush(state: DurableObjectState, subject: string) {
  let release!: () => void;
  let sent!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const writing = new Promise<void>((r) => (sent = r));
  const DB = {
    prepare: (q: string) => env.DB.prepare(q),
    batch: async (stmts: D1PreparedStatement[]) => {
      sent();
      await gate;
      return env.DB.batch(stmts);
    },
  } as unknown as D1Database;
  const sql = new Sql(state.storage);
  const flusher = new SnapshotFlusher(sql, new Jobs(sql, state.storage), { ...env, DB }, () => ({ namespace: NS, subject }));
  const pending = flusher.flush(false);
  await writing;
  return { sql, flusher, pending, release };
}

async function d1Rows(subject: string, meterId: string) {
  const { results } = await env.DB.prepare(
    "SELECT window_start, group_key, sum, count, min, max, latest_at, latest FROM usage_snapshots WHERE namespace = ? AND subject = ? AND meter_id = ? ORDER BY window_start, group_key",
  )
    .bind(NS, subject, meterId)
    .all<{ window_start: number; group_key: string; sum: number; count: number; min: number; max: number; latest_at: number; latest: number }>();
  return results;
}

async function d1State(subject: string) {
  return env.DB.prepare("SELECT seq, as_of, pending FROM snapshot_subjects WHERE namespace = ? AND subject = ?").bind(NS, subject).first<{ seq: number; as_of: number; pending: number }>();
}

/** The DO's snapshot bookkeeping: unflushed windows and the flush job's due time. */
async function bookkeeping(subject: string) {
  return runInDurableObject(customerStub(subject), (_i, state) => {
    const sql = new Sql(state.storage);
    return {
      unflushed: sql.all<{ meter_id: string; window_start: number; version: number; flushed: number }>("SELECT meter_id, window_start, version, flushed FROM snapshot_windows WHERE version > flushed"),
      due: sql.one<{ value: number }>("SELECT value FROM meta WHERE key = 'job:flush'")?.value ?? null,
    };
  });
}

/** A recent quarter hour far enough back that +/- a few windows stays inside retention and the past. */
const base = granuleOf(Date.now()) - 2 * 86_400_000;
const ev = (subject: string, time: number, data: Record<string, unknown>) => event({ subject, time: iso(time), type: "snap", data });

let sumMeter: string;

beforeAll(async () => {
  sumMeter = (await createMeter({ slug: "snap_tokens", eventType: "snap", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } })).body.id;
});

describe("snapshot bookkeeping and the flush job", () => {
  it("marks the windows a batch changed, schedules the flush an interval later, and the alarm flushes them", async () => {
    const s = uid("alarm");
    const before = Date.now();
    await ingestOk([ev(s, base + MINUTE, { tokens: 2, model: "a" }), ev(s, base + 2 * MINUTE, { tokens: 3, model: "a" }), ev(s, base + GRANULE_MS + MINUTE, { tokens: 5, model: "b" })]);
    const b = await bookkeeping(s);
    expect(b.unflushed.map((w) => w.window_start).sort()).toEqual([base, base + GRANULE_MS]);
    // SNAPSHOT_INTERVAL_SECONDS defaults to 30.
    expect(b.due).toBeGreaterThanOrEqual(before + 30_000);
    expect(b.due).toBeLessThanOrEqual(Date.now() + 30_000);
    expect(await d1Rows(s, sumMeter)).toEqual([]);

    // Make the job due now, then let the alarm run it.
    const flushedAt = Date.now();
    await runInDurableObject(customerStub(s), (_i, state) => new Sql(state.storage).exec("UPDATE meta SET value = 0 WHERE key = 'job:flush'"));
    expect(await runDurableObjectAlarm(customerStub(s))).toBe(true);

    const rows = await d1Rows(s, sumMeter);
    expect(rows.map((r) => [r.window_start, JSON.parse(r.group_key).model, r.sum, r.count, r.min, r.max])).toEqual([
      [base, "a", 5, 2, 2, 3],
      [base + GRANULE_MS, "b", 5, 1, 5, 5],
    ]);
    expect(rows[0]!.latest).toBe(3);
    expect(await d1State(s)).toMatchObject({ seq: 1, pending: 0 });
    // Every window is flushed; the job stays due one interval on while flushes carry data, so the
    // next batch neither writes its row nor moves the alarm.
    const after = await bookkeeping(s);
    expect(after.unflushed).toEqual([]);
    expect(after.due).toBeGreaterThanOrEqual(flushedAt + 30_000);
    expect(after.due).toBeLessThanOrEqual(Date.now() + 30_000);
    await ingestOk([ev(s, base + 3 * MINUTE, { tokens: 1, model: "a" })]);
    expect((await bookkeeping(s)).due).toBe(after.due);

    // That batch is flushed at the next run; the run after, with nothing to send, ends the job.
    const runNow = async () => {
      await runInDurableObject(customerStub(s), (_i, state) => new Sql(state.storage).exec("UPDATE meta SET value = 0 WHERE key = 'job:flush'"));
      expect(await runDurableObjectAlarm(customerStub(s))).toBe(true);
    };
    await runNow();
    expect((await d1State(s))!.seq).toBe(2);
    expect((await bookkeeping(s)).due).not.toBeNull();
    await runNow();
    expect((await d1State(s))!.seq).toBe(2); // nothing sent
    expect(await bookkeeping(s)).toEqual({ unflushed: [], due: null });
  });

  it("writes one bookkeeping row per window between flushes, not per event or per batch", async () => {
    const s = uid("cheap");
    await ingestOk(Array.from({ length: 200 }, (_, i) => ev(s, base + (i % 10) * 1000, { tokens: 1, model: "a" })));
    const b = await bookkeeping(s);
    expect(b.unflushed).toHaveLength(1);
    expect(b.unflushed[0]!.version).toBe(1);
    // Marked already and not flushed since: the next batches write no bookkeeping row.
    await ingestOk([ev(s, base + 5000, { tokens: 1, model: "a" })]);
    await ingestOk([ev(s, base + 6000, { tokens: 2, model: "a" })]);
    expect((await bookkeeping(s)).unflushed.map((w) => w.version)).toEqual([1]);

    await runInDurableObject(customerStub(s), (_i, state) => new Sql(state.storage).exec("UPDATE meta SET value = 0 WHERE key = 'job:flush'"));
    expect(await runDurableObjectAlarm(customerStub(s))).toBe(true);
    expect((await d1Rows(s, sumMeter)).map((r) => r.sum)).toEqual([203]);
    expect((await bookkeeping(s)).unflushed).toEqual([]);
    // After the flush read the window, a change marks it again and reaches D1 with the next flush.
    await ingestOk([ev(s, base + 7000, { tokens: 4, model: "a" })]);
    expect((await bookkeeping(s)).unflushed.map((w) => w.version)).toEqual([2]);
    await runInDurableObject(customerStub(s), (_i, state) => new Sql(state.storage).exec("UPDATE meta SET value = 0 WHERE key = 'job:flush'"));
    expect(await runDurableObjectAlarm(customerStub(s))).toBe(true);
    expect((await d1Rows(s, sumMeter)).map((r) => r.sum)).toEqual([207]);
  });

  it("a batch rolled back after marking a window does not stop the next batch from marking it", async () => {
    const s = uid("rolled");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    await runInDurableObject(customerStub(s), (_i, state) => new Sql(state.storage).exec("UPDATE meta SET value = 0 WHERE key = 'job:flush'"));
    expect(await runDurableObjectAlarm(customerStub(s))).toBe(true);
    expect((await bookkeeping(s)).unflushed).toEqual([]);
    await runInDurableObject(customerStub(s), (instance) => {
      const sql = (instance as unknown as { sql: Sql }).sql;
      const w = [{ meterId: sumMeter, minute: base + 2 * MINUTE }];
      expect(() =>
        sql.transaction(() => {
          markChanged(sql, w);
          throw new Error("the batch failed");
        }),
      ).toThrow("the batch failed");
      markChanged(sql, w);
    });
    expect((await bookkeeping(s)).unflushed.map((x) => x.window_start)).toEqual([base]);
  });
});

describe("forgetting old windows", () => {
  it("the prune job forgets flushed windows older than event retention and keeps unflushed ones", async () => {
    const s = uid("forget");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    const old = granuleOf(Date.now() - 36 * 86_400_000); // EVENT_RETENTION_DAYS is 35
    await runInDurableObject(customerStub(s), (_i, state) => {
      const sql = new Sql(state.storage);
      sql.exec("INSERT INTO snapshot_windows (meter_id, window_start, version, flushed, reset) VALUES (?, ?, 3, 3, 0), (?, ?, 2, 1, 0)", sumMeter, old, sumMeter, old - GRANULE_MS);
      sql.exec("UPDATE meta SET value = 0 WHERE key = 'job:prune'");
    });
    expect(await runDurableObjectAlarm(customerStub(s))).toBe(true);
    const left = await runInDurableObject(customerStub(s), (_i, state) =>
      new Sql(state.storage).all<{ window_start: number }>("SELECT window_start FROM snapshot_windows ORDER BY window_start").map((r) => r.window_start),
    );
    expect(left).toEqual([old - GRANULE_MS, base]);
  });
});

describe("the flush log line", () => {
  it("is written only with LOG_SNAPSHOT_FLUSHES=true, one per flush that carried data", async () => {
    const s = uid("log");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    const logged = await runInDurableObject(customerStub(s), async (_i, state) => {
      const lines: string[] = [];
      const spy = vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
      try {
        const sql = new Sql(state.storage);
        const jobs = new Jobs(sql, state.storage);
        const flusher = (vars: Partial<typeof env>) => new SnapshotFlusher(sql, jobs, { ...env, ...vars }, () => ({ namespace: NS, subject: s }));
        await flusher({}).flush(false); // the default: off
        const byDefault = lines.length;
        markChanged(sql, [{ meterId: sumMeter, minute: base + MINUTE }]);
        await flusher({ LOG_SNAPSHOT_FLUSHES: "true" }).flush(false);
        await flusher({ LOG_SNAPSHOT_FLUSHES: "true" }).flush(false); // nothing left to send: no line
        return { byDefault, lines };
      } finally {
        spy.mockRestore();
      }
    });
    expect(logged.byDefault).toBe(0);
    expect(logged.lines).toHaveLength(1);
    const line = JSON.parse(logged.lines[0]!);
    expect(line).toMatchObject({ msg: "snapshot flush", namespace: NS, subject: s, windows: 1, applied: true });
    // Each flusher above is a new one, as after a restart: it skips the number its predecessor reserved.
    expect(line.seq).toBe(3);
  });
});

describe("flush idempotence", () => {
  it("a second flush with nothing changed sends no rows; replaying an older or the same flush changes nothing", async () => {
    const s = uid("idem");
    await ingestOk([ev(s, base + MINUTE, { tokens: 10, model: "a" })]);
    const first = await flush(s);
    expect(first).toMatchObject({ applied: true, windows: 1, rows: 1, left: false, next: null });
    const after1 = await d1Rows(s, sumMeter);

    const second = await flush(s);
    expect(second).toMatchObject({ applied: true, windows: 0, rows: 0 });
    expect(await d1Rows(s, sumMeter)).toEqual(after1);

    await ingestOk([ev(s, base + 2 * MINUTE, { tokens: 7, model: "a" })]);
    const third = await flush(s);
    expect(third.seq).toBe(first.seq + 2);
    const after3 = await d1Rows(s, sumMeter);
    expect(after3[0]).toMatchObject({ sum: 17, count: 2 });

    // The first flush, delivered again late (its seq is older), and the latest one delivered twice.
    const stale: SubjectFlush = {
      namespace: NS,
      subject: s,
      seq: first.seq,
      asOf: 0,
      flushedAt: 0,
      pending: false,
      windows: [{ meterId: sumMeter, windowStart: base, reset: true }],
      rows: [{ meterId: sumMeter, windowStart: base, groupKey: '{"model":"a"}', sum: 10, count: 1, min: 10, max: 10, latestAt: base + MINUTE, latest: 10 }],
      uniques: [],
    };
    const replay = await writeFlush(database(env.DB), stale);
    expect(replay).toMatchObject({ applied: false, rowsWritten: 0 });
    const again = await writeFlush(database(env.DB), { ...stale, seq: third.seq, rows: [{ ...stale.rows[0]!, sum: 17, count: 2, max: 10, min: 7 }] });
    expect(again).toMatchObject({ applied: false, rowsWritten: 0 });
    expect(await d1Rows(s, sumMeter)).toEqual(after3);
    expect((await d1State(s))!.seq).toBe(third.seq);
  });

  it("an object whose storage lost a flush's number (restored to an earlier point) is refused, then resends everything under a later one", async () => {
    const s = uid("lost");
    await ingestOk([ev(s, base + MINUTE, { tokens: 2, model: "a" }), ev(s, base + GRANULE_MS + MINUTE, { tokens: 3, model: "b" })]);
    expect(await flush(s)).toMatchObject({ seq: 1, applied: true });
    await runInDurableObject(customerStub(s), (_i, state) => new Sql(state.storage).exec("DELETE FROM meta WHERE key = 'snapshot_seq'"));
    // A restore brings a new instance: nothing of the old one's memory (its reserved number) survives.
    await evictDurableObject(customerStub(s));
    await ingestOk([ev(s, base + 2 * MINUTE, { tokens: 5, model: "a" })]);
    expect(await flush(s)).toMatchObject({ seq: 1, applied: false, left: true });
    // The refusal armed the alarm a second on; the test flushes by itself instead.
    await runInDurableObject(customerStub(s), (_i, state) => state.storage.deleteAlarm());
    expect(await flush(s)).toMatchObject({ seq: 2, applied: true, windows: 2 });
    expect((await d1Rows(s, sumMeter)).map((r) => [r.window_start, JSON.parse(r.group_key).model, r.sum])).toEqual([
      [base, "a", 7],
      [base + GRANULE_MS, "b", 3],
    ]);
    expect((await d1State(s))!.seq).toBe(2);
  });

  it("rewrites only the windows that changed since the last flush", async () => {
    const s = uid("changed");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" }), ev(s, base + GRANULE_MS, { tokens: 1, model: "a" }), ev(s, base + 2 * GRANULE_MS, { tokens: 1, model: "a" })]);
    expect(await flush(s)).toMatchObject({ windows: 3, rows: 3 });
    await ingestOk([ev(s, base + GRANULE_MS + MINUTE, { tokens: 4, model: "a" })]);
    const r = await flush(s);
    expect(r).toMatchObject({ windows: 1, rows: 1 });
    // One snapshot row updated in place, plus the subject's state row: nothing else written.
    expect(r.rowsWritten).toBeLessThanOrEqual(3);
    expect((await d1Rows(s, sumMeter)).map((x) => x.sum)).toEqual([1, 5, 1]);
  });

  it("a change that lands while a flush awaits D1 stays unflushed, and the job comes back for it", async () => {
    const s = uid("race");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    const result = await runInDurableObject(customerStub(s), async (_i, state) => {
      // D1 held until the test lets it answer: the read half has run, the write has not landed.
      const { sql, pending, release } = await heldFlush(state, s);
      markChanged(sql, [{ meterId: sumMeter, minute: base + MINUTE }]);
      release();
      const report = await pending;
      return { report, window: sql.one<{ version: number; flushed: number }>("SELECT version, flushed FROM snapshot_windows")! };
    });
    expect(result.window).toEqual({ version: 2, flushed: 1 });
    expect(result.report.left).toBe(true);
    expect(result.report.next).toBeGreaterThan(Date.now());
  });
});

describe("flush numbers", () => {
  it("a write that D1 applied but that failed on the way back is never followed by a flush under the same number", async () => {
    const s = uid("unclear");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    const reports = await runInDurableObject(customerStub(s), async (_i, state) => {
      const sql = new Sql(state.storage);
      let failAfterApplying = false;
      const DB = {
        prepare: (q: string) => env.DB.prepare(q),
        batch: async (stmts: D1PreparedStatement[]) => {
          const results = await env.DB.batch(stmts);
          if (failAfterApplying) throw new Error("connection reset after the commit");
          return results;
        },
      } as unknown as D1Database;
      const flusher = new SnapshotFlusher(sql, new Jobs(sql, state.storage), { ...env, DB }, () => ({ namespace: NS, subject: s }));
      // A counted batch: marks its window and reserves the next flush's number.
      const mark = () => {
        markChanged(sql, [{ meterId: sumMeter, minute: base + MINUTE }]);
        reserveFlushSeq(sql);
      };
      const flushFailingAfterD1 = async () => {
        failAfterApplying = true;
        const report = await flusher.flush(false);
        failAfterApplying = false;
        mark();
        return report;
      };
      // Once under a number the read reserved (this Sql has reserved none), once under one a batch reserved.
      const firstUnclear = await flushFailingAfterD1();
      const second = await flusher.flush(false);
      mark();
      const reservedUnclear = await flushFailingAfterD1();
      const last = await flusher.flush(false);
      return { firstUnclear, second, reservedUnclear, last };
    });
    // D1 holds each unclear flush: reusing its number would be refused as stale, and every window resent.
    // The object's own batch (ingestOk) reserved 1; this Sql's memory knows nothing of it.
    expect(reports.firstUnclear).toMatchObject({ seq: 2, left: true });
    expect(reports.firstUnclear.error).toContain("connection reset");
    expect(reports.second).toMatchObject({ applied: true, seq: 3 });
    expect(reports.reservedUnclear).toMatchObject({ seq: 4, left: true });
    expect(reports.last).toMatchObject({ applied: true, seq: 5, windows: 1 });
    expect((await d1State(s))!.seq).toBe(5);
  });

  it("a counted batch reserves the next flush's number, so the flush's read writes nothing", async () => {
    const s = uid("reserve");
    const seq = () => runInDurableObject(customerStub(s), (_i, state) => new Sql(state.storage).one<{ value: number }>("SELECT value FROM meta WHERE key = 'snapshot_seq'")?.value);
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    expect(await seq()).toBe(1);
    expect(await flush(s)).toMatchObject({ seq: 1, applied: true });
    expect(await seq()).toBe(1);
    await ingestOk([ev(s, base + 2 * MINUTE, { tokens: 1, model: "a" })]);
    await ingestOk([ev(s, base + 3 * MINUTE, { tokens: 1, model: "a" })]);
    expect(await seq()).toBe(2);
    expect(await flush(s)).toMatchObject({ seq: 2, applied: true });
  });

  it("a refused flush forgets a number reserved while it awaited D1, so the next one is sent above D1's", async () => {
    const s = uid("refused");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    // D1 already holds a later flush of this subject (this object's storage was restored to an earlier point).
    await env.DB.prepare("INSERT INTO snapshot_subjects (namespace, subject, seq, as_of, flushed_at, pending) VALUES (?, ?, 10, 0, 0, 0)").bind(NS, s).run();
    const result = await runInDurableObject(customerStub(s), async (_i, state) => {
      const { sql, flusher, pending, release } = await heldFlush(state, s);
      // A batch counted meanwhile: it marks its window and reserves the number after the one in flight.
      markChanged(sql, [{ meterId: sumMeter, minute: base + MINUTE }]);
      const reserved = reserveFlushSeq(sql);
      release();
      const refused = await pending;
      const next = await flusher.flush(false);
      return { reserved, refused, next };
    });
    expect(result.refused).toMatchObject({ applied: false, left: true });
    expect(result.reserved).toBe(result.refused.seq + 1);
    expect(result.next).toMatchObject({ applied: true, seq: 11 });
    expect((await d1State(s))!.seq).toBe(11);
  });

  it("numbers keep rising across an eviction, which forgets the reserved one", async () => {
    const s = uid("evicted");
    await ingestOk([ev(s, base + MINUTE, { tokens: 1, model: "a" })]);
    expect(await flush(s)).toMatchObject({ seq: 1, applied: true });
    await ingestOk([ev(s, base + 2 * MINUTE, { tokens: 1, model: "a" })]);
    expect(await flush(s)).toMatchObject({ seq: 2, applied: true });
    await evictDurableObject(customerStub(s));
    await ingestOk([ev(s, base + 3 * MINUTE, { tokens: 1, model: "a" })]);
    const after = await flush(s);
    expect(after.applied).toBe(true);
    expect(after.seq).toBeGreaterThan(2);
    expect((await d1Rows(s, sumMeter)).map((r) => r.sum)).toEqual([3]);
  });
});

describe("chunking within D1's limits", () => {
  it("flushes 500 windows in one flush with a handful of statements, each within the guard", async () => {
    const s = uid("wide");
    await ingestOk(Array.from({ length: 500 }, (_, i) => ev(s, base - i * GRANULE_MS + MINUTE, { tokens: i, model: "m" })));
    const r = await flush(s);
    expect(r).toMatchObject({ applied: true, windows: 500, rows: 500, left: false });
    // 500 rows × 11 columns as bound parameters would be 5,500; as JSON they are one statement (+ the state row).
    expect(r.statements).toBe(2);
    const { results } = await env.DB.prepare("SELECT count(*) AS n, sum(sum) AS total FROM usage_snapshots WHERE namespace = ? AND subject = ?").bind(NS, s).all<{ n: number; total: number }>();
    expect(results[0]).toEqual({ n: 500, total: (499 * 500) / 2 });
  });

  it("the guard is what stops a multi-row insert above 100 bound parameters", async () => {
    const db = database(env.DB);
    const row = (i: number) => ({ namespace: "guard", meterId: "m", windowStart: i, subject: "s", groupKey: "{}", sum: 1, count: 1, min: 1, max: 1, latestAt: i, latest: 1 });
    // 10 rows × 11 columns = 110 parameters: D1 in workerd would accept it; production would not.
    const err = await db
      .insert(usageSnapshots)
      .values(Array.from({ length: 10 }, (_, i) => row(i)))
      .then(() => null, (e: Error) => e);
    // drizzle wraps the driver's error; the guard's is its cause.
    expect(err?.cause ?? err).toBeInstanceOf(StatementLimitError);
    await expect(db.insert(usageSnapshots).values(Array.from({ length: 9 }, (_, i) => row(i)))).resolves.toBeDefined();
  });

  it("splits more than 2,000 changed windows over successive flushes, telling D1 more is pending", async () => {
    const s = uid("many");
    const events = Array.from({ length: 2_010 }, (_, i) => ev(s, base - i * GRANULE_MS + MINUTE, { tokens: 1, model: "m" }));
    for (let i = 0; i < events.length; i += 1_000) await ingestOk(events.slice(i, i + 1_000));
    const first = await flush(s);
    expect(first).toMatchObject({ windows: 2_000, left: true });
    expect(first.next! - Date.now()).toBeLessThan(2_000);
    expect(await d1State(s)).toMatchObject({ pending: 1 });
    expect(await flush(s)).toMatchObject({ windows: 10, left: false, next: null });
    expect(await d1State(s)).toMatchObject({ pending: 0 });
  });
});

describe("definition changes reach D1", () => {
  it("a groupBy change replaces the re-metered windows' rows whole; deleting the meter removes them", async () => {
    const slug = uid("regroup");
    const meterId = (await createMeter({ slug, eventType: "regroup", aggregation: "SUM", valueProperty: "$.v", groupBy: { a: "$.a" } })).body.id;
    const s = uid("regrouped");
    const e = (t: number, a: string, b: string) => event({ subject: s, type: "regroup", time: iso(t), data: { v: 1, a, b } });
    await ingestOk([e(base + MINUTE, "x", "p"), e(base + 2 * MINUTE, "y", "q")]);
    await flush(s);
    expect((await d1Rows(s, meterId)).map((r) => r.group_key)).toEqual(['{"a":"x"}', '{"a":"y"}']);

    expect((await api("PUT", `/api/v1/meters/${slug}`, { body: { groupBy: { b: "$.b" } } })).status).toBe(200);
    // The DO applies the new definition on its next call (here a query) and re-meters then.
    expect((await api("GET", `/api/v1/meters/${slug}/query?subject=${s}`)).status).toBe(200);
    const after = await bookkeeping(s);
    expect(after.unflushed.length).toBe(1);
    // No batch was counted, yet the flush is scheduled: re-metered windows reach D1 on their own.
    expect(after.due).not.toBeNull();
    await flush(s);
    expect((await d1Rows(s, meterId)).map((r) => r.group_key)).toEqual(['{"b":"p"}', '{"b":"q"}']);

    expect((await api("DELETE", `/api/v1/meters/${slug}`)).status).toBe(204);
    await api("GET", `/api/v1/meters/snap_tokens/query?subject=${s}`);
    await flush(s);
    expect(await d1Rows(s, meterId)).toEqual([]);
  });
});
