import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { Jobs } from "../../src/customer/jobs";
import { markChanged, reserveFlushSeq, SnapshotFlusher } from "../../src/customer/snapshots";
import { Sql } from "../../src/customer/sql";
import { database } from "../../src/db/client";
import { writeFlush, type SubjectFlush } from "../../src/db/snapshots";
import { GRANULE_MS } from "../../src/domain/rollup";
import { MINUTE, customerStub, ingestOk, uid } from "../helpers/api";
import { base, createSnapshotMeter, d1Rows, d1State, flush, NS, snapshotEvent } from "../helpers/snapshots";

// Snapshot flushes are numbered so that D1 applies each once and never an older one over a newer:
// replays, lost numbers, a D1 write whose outcome the object never learned, and the number a
// counted batch reserves for the next flush (src/customer/snapshots.ts, reserveFlushSeq).

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

const ev = snapshotEvent("snap_n");
let sumMeter: string;

beforeAll(async () => {
  sumMeter = await createSnapshotMeter("snap_numbers", "snap_n");
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
    await env.DB.prepare("INSERT OR REPLACE INTO snapshot_subjects (namespace, subject, seq, as_of, flushed_at, pending) VALUES (?, ?, 10, 0, 0, 0)").bind(NS, s).run();
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
