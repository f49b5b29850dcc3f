import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { Jobs } from "../../src/customer/jobs";
import { markChanged, SnapshotFlusher } from "../../src/customer/snapshots";
import { Sql } from "../../src/customer/sql";
import { database } from "../../src/db/client";
import { StatementLimitError } from "../../src/db/guard";
import { usageSnapshots } from "../../src/db/schema";
import { GRANULE_MS, granuleOf } from "../../src/domain/rollup";
import { MINUTE, api, createMeter, customerStub, event, ingestOk, iso, uid } from "../helpers/api";
import { base, createSnapshotMeter, d1Rows, d1State, flush, NS, snapshotEvent } from "../helpers/snapshots";

// The snapshot bookkeeping in the Durable Object, the flush job, and what reaches D1. Flush numbers
// and idempotence: snapshot-flush-numbers.test.ts.

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

const ev = snapshotEvent("snap");
let sumMeter: string;

beforeAll(async () => {
  sumMeter = await createSnapshotMeter("snap_tokens", "snap");
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

describe("chunking within D1's limits", () => {
  it("flushes 500 windows in one flush with a handful of statements, each within the guard", async () => {
    const s = uid("wide");
    await ingestOk(Array.from({ length: 500 }, (_, i) => ev(s, base - i * GRANULE_MS + MINUTE, { tokens: i, model: "m" })));
    const r = await flush(s);
    expect(r).toMatchObject({ applied: true, windows: 500, rows: 500, left: false });
    // 500 rows × 11 columns as bound parameters would be 5,500; as JSON they are one statement, and the
    // UTC days they fall in are rebuilt by one more (+ the state row).
    expect(r.statements).toBe(3);
    // D1's own time for the batch (meta.duration), the figure docs/snapshots.md's capacity estimate divides by.
    expect(r.d1Ms).toBeGreaterThan(0);
    expect(r.d1Ms).toBeLessThan(10_000);
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
