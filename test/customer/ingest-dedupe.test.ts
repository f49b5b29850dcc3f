import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ingestBatch, type DedupeHint } from "../../src/customer/ingest";
import type { Sql } from "../../src/customer/sql";
import type { MeterSet } from "../../src/domain/metering";
import { createMeter, customerStub, event, ingestOk, total, uid } from "../helpers/api";

/** A SUM meter on `$.n` for its own event type, and a subject no other test uses. */
async function sumMeter(prefix: string): Promise<{ type: string; slug: string; subject: string }> {
  const type = uid(prefix);
  const slug = uid(`${prefix}_sum`);
  await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n" });
  return { type, slug, subject: uid("subj") };
}

// storeNew (src/customer/ingest.ts) has an optimistic strategy (one INSERT … ON CONFLICT DO NOTHING,
// rolled back to a savepoint when the batch turns out mixed) and a careful one (SELECT, then INSERT).
// Every combination must count each (source, id) exactly once.
describe("ingest dedupe strategies", () => {
  it("all new, all duplicates, and a mix found by the optimistic insert are each counted exactly once", async () => {
    const { type, slug, subject } = await sumMeter("dd");
    await ingestOk([event({ type, subject, data: { n: 1 } })]); // names the DO's customer, loads the meter
    await runInDurableObject(customerStub(subject), (instance) => {
      const o = instance as unknown as { sql: Sql; meters: { set: MeterSet } };
      const now = Date.now();
      const ev = (id: string, index: number) => ({ index, id, source: "dd", type, time: now, data: { n: 10 } });
      const run = (events: ReturnType<typeof ev>[], hint: DedupeHint) =>
        o.sql.transaction(() => ingestBatch(o.sql, o.meters.set, events, now, 86_400_000, hint));
      const rows = () => Number(o.sql.one<{ n: number }>("SELECT count(*) AS n FROM events WHERE source = 'dd'")!.n);
      const counted = (r: { buckets: { deltas(): { sum: number }[] } }) => r.buckets.deltas().reduce((n, d) => n + d.sum, 0);

      const hint = { duplicatesLikely: false };
      expect(run([ev("a", 0), ev("b", 1)], hint)).toMatchObject({ accepted: 2, duplicates: 0 });
      expect(hint.duplicatesLikely).toBe(false);
      expect(run([ev("a", 0), ev("b", 1)], hint)).toMatchObject({ accepted: 0, duplicates: 2 });
      expect(hint.duplicatesLikely).toBe(true);

      // Optimistic insert meets a mix: rolled back, then redone carefully.
      const mixed = run([ev("a", 0), ev("c", 1), ev("b", 2), ev("d", 3)], { duplicatesLikely: false });
      expect(mixed).toMatchObject({ accepted: 2, duplicates: 2 });
      expect(counted(mixed)).toBe(20);
      expect(rows()).toBe(4);
      // Careful strategy, both kinds.
      const careful = { duplicatesLikely: true };
      const some = run([ev("d", 0), ev("e", 1)], careful);
      expect(some).toMatchObject({ accepted: 1, duplicates: 1 });
      expect(counted(some)).toBe(10);
      expect(careful.duplicatesLikely).toBe(true);
      expect(run([ev("f", 0)], careful)).toMatchObject({ accepted: 1, duplicates: 0 });
      expect(careful.duplicatesLikely).toBe(false);
      expect(rows()).toBe(6);
    });
  });

  it("through the API: a batch re-sent with new events mixed in counts each once", async () => {
    const { type, slug, subject } = await sumMeter("dd");
    const first = Array.from({ length: 50 }, () => event({ type, subject, data: { n: 1 } }));
    const more = Array.from({ length: 25 }, () => event({ type, subject, data: { n: 1 } }));
    expect(await ingestOk(first)).toMatchObject({ accepted: 50, duplicates: 0 });
    expect(await ingestOk([...more.slice(0, 10), ...first, ...more.slice(10)])).toMatchObject({ accepted: 25, duplicates: 50 });
    expect(await ingestOk([...first, ...more])).toMatchObject({ accepted: 0, duplicates: 75 });
    expect(await total(slug, subject)).toBe(75);
  });
});

describe("the Worker's batch plan (src/customer/batch.ts)", () => {
  it("is used only when it applies: a plan from an older meter version, or a resent batch, is metered by the Durable Object", async () => {
    const type = uid("plan");
    const slug = uid("plan_sum");
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n", groupBy: { m: "$.m" } });
    const subject = uid("subj");
    const batch = Array.from({ length: 20 }, (_, i) => event({ type, subject, data: { n: 2, m: `g${i % 3}` } }));
    expect(await ingestOk(batch)).toMatchObject({ accepted: 20, duplicates: 0 });
    expect(await ingestOk(batch)).toMatchObject({ accepted: 0, duplicates: 20 });
    const more = Array.from({ length: 5 }, () => event({ type, subject, data: { n: 2, m: "g0" } }));
    expect(await ingestOk([...more, ...more])).toMatchObject({ accepted: 5, duplicates: 5 });
    expect(await total(slug, subject)).toBe(50);

    const { prepareBatch } = await import("../../src/customer/batch");
    const { MeterSet } = await import("../../src/domain/metering");
    await runInDurableObject(customerStub(subject), (instance) => {
      const o = instance as unknown as { meters: { version: number; set: MeterSet } };
      const now = Date.now();
      const evs = [{ index: 0, id: uid("p"), source: "s", type, time: now, data: { n: 7, m: "g1" } }];
      // A plan made with other meters (version mismatch) must be ignored: a wrong plan claims 1,000.
      const stale = prepareBatch(evs, { version: o.meters.version - 1, set: o.meters.set });
      stale.planV2!.deltas[0]!.sum = 1000;
      return { stale };
    }).then(async ({ stale }) => {
      const id = { namespace: "default", subject };
      const config = { version: 0, meters: [] };
      await customerStub(subject).ingest(id, config, stale);
    });
    expect(await total(slug, subject)).toBe(57);
  });

  it("a mixed batch counts only its new events for COUNT (no value) and UNIQUE_COUNT meters too", async () => {
    const type = uid("plan");
    const count = uid("plan_count");
    const unique = uid("plan_uniq");
    const sum = uid("plan_sum");
    await createMeter({ slug: count, eventType: type, aggregation: "COUNT" });
    await createMeter({ slug: unique, eventType: type, aggregation: "UNIQUE_COUNT", valueProperty: "$.u" });
    await createMeter({ slug: sum, eventType: type, aggregation: "SUM", valueProperty: "$.n" });
    const subject = uid("subj");
    const one = (u: string, n: number) => event({ type, subject, source: "s1", data: { u, n } });
    const first = [one("a", 1), one("b", 2), one("c", 3)];
    expect(await ingestOk(first)).toMatchObject({ accepted: 3, duplicates: 0 });
    // Re-sent: a, b (COUNT 8, SUM 69 if counted again). New: d twice, e (UNIQUE_COUNT 3 without them).
    const mixed = [first[0]!, one("d", 10), first[1]!, one("e", 20), one("d", 30)];
    expect(await ingestOk(mixed)).toMatchObject({ accepted: 3, duplicates: 2 });
    expect(await total(count, subject)).toBe(6);
    expect(await total(unique, subject)).toBe(5);
    expect(await total(sum, subject)).toBe(66);
  });

  it("ignores a plan in another format (a Worker of another version during a deploy) and meters the rows itself", async () => {
    const { type, slug, subject } = await sumMeter("plan");
    const first = event({ type, subject, data: { n: 1 } });
    expect(await ingestOk([first])).toMatchObject({ accepted: 1 });
    const { prepareBatch } = await import("../../src/customer/batch");
    const { MeterSet } = await import("../../src/domain/metering");
    const batch = await runInDurableObject(customerStub(subject), (instance) => {
      const o = instance as unknown as { meters: { version: number; set: MeterSet } };
      const now = Date.now();
      const ev = (id: string, n: number, index: number) => ({ index, id, source: "test", type, time: now, data: { n } });
      const { rows, planV2 } = prepareBatch([ev(first.id as string, 1, 0), ev(uid("new"), 10, 1)], o.meters);
      // The previous format under the old name, with its numbers claiming 1,000: it must not be read.
      return { rows, plan: { ...planV2!, deltas: planV2!.deltas.map((d) => ({ ...d, sum: 1000 })), readings: { ...planV2!.readings, value: [1000, 1000] } } };
    });
    const id = { namespace: "default", subject };
    expect(await customerStub(subject).ingest(id, { version: 0, meters: [] }, batch as never)).toMatchObject({ accepted: 1, duplicates: 1 });
    expect(await total(slug, subject)).toBe(11);
  });

  it("finds re-sent events among new ones by id when the batch has one source, by row when it has several", async () => {
    const { type, slug, subject } = await sumMeter("plan");
    const one = (source: string, n: number) => event({ type, subject, source, data: { n } });
    const first = Array.from({ length: 10 }, (_, i) => one("s1", i + 1)); // 55
    expect(await ingestOk(first)).toMatchObject({ accepted: 10, duplicates: 0 });
    const fresh = Array.from({ length: 5 }, () => one("s1", 100)); // 500
    expect(await ingestOk([...first.slice(0, 5), ...fresh])).toMatchObject({ accepted: 5, duplicates: 5 });
    const fresh2 = Array.from({ length: 3 }, () => one("s1", 1000)); // 3,000
    expect(await ingestOk([...fresh2, ...first.slice(5), ...fresh])).toMatchObject({ accepted: 3, duplicates: 10 });
    // Same ids under another source are other events.
    const other = first.slice(0, 4).map((e) => ({ ...e, source: "s2" })); // 1+2+3+4 = 10
    expect(await ingestOk([...first.slice(0, 4), ...other, ...fresh2])).toMatchObject({ accepted: 4, duplicates: 7 });
    expect(await total(slug, subject)).toBe(55 + 500 + 3000 + 10);

    const { prepareBatch } = await import("../../src/customer/batch");
    const { MeterSet } = await import("../../src/domain/metering");
    const meters = { version: 1, set: new MeterSet([]) };
    const ev = (source: string, id: string, index: number) => ({ index, id, source, type, time: Date.now(), data: null });
    expect(prepareBatch([ev("a", "x", 0), ev("a", "y", 1)], meters).planV2).toMatchObject({ source: "a", ids: '["x","y"]' });
    expect(prepareBatch([ev("a", "x", 0), ev("b", "y", 1)], meters).planV2?.ids).toBeUndefined();
  });
});
