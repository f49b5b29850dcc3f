import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { prepareBatch } from "../../src/customer/batch";
import { RecentIds } from "../../src/customer/recent-ids";
import type { Sql } from "../../src/customer/sql";
import type { MeterSet } from "../../src/domain/metering";
import { createMeter, customerStub, event, ingestOk, total, uid } from "../helpers/api";

// RecentIds (src/customer/recent-ids.ts) lets a re-sent event be called a duplicate without a look in
// the dedupe index. It must only ever name ids that are stored, or usage is lost.

type Instance = { sql: Sql; recent: RecentIds; meters: { version: number; set: MeterSet }; counted: (...a: unknown[]) => void };

async function sumMeter(): Promise<{ type: string; slug: string; subject: string }> {
  const type = uid("ri");
  const slug = uid("ri_sum");
  await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n" });
  return { type, slug, subject: uid("subj") };
}

const rowsRead = (subject: string) => runInDurableObject(customerStub(subject), (i) => (i as unknown as Instance).sql.snapshot().rowsRead);

describe("RecentIds", () => {
  it("forgets the oldest ids beyond its capacity, keeps sources apart, and holds an id once", () => {
    const r = new RecentIds(4);
    r.add("a", ["1", "2", "3"]);
    r.add("a", ["2"]); // already held: takes no second slot
    r.add("b", ["1", "9"]);
    expect(r.knownPositions("a", ["1", "2", "3", "9"])).toEqual([1, 2]);
    expect(r.knownPositions("b", ["1", "9", "2"])).toEqual([0, 1]);
    r.clear();
    expect(r.knownPositions("a", ["2", "3"])).toEqual([]);
    expect(r.knownPositions("b", ["9"])).toEqual([]);
  });

  it("a re-sent batch known to the object skips the index; after a restart the log finds the same duplicates", async () => {
    const { type, slug, subject } = await sumMeter();
    const batch = (n: number) => Array.from({ length: n }, () => event({ type, subject, source: "ri", data: { n: 1 } }));
    const first = batch(200);
    expect(await ingestOk(first)).toMatchObject({ accepted: 200, duplicates: 0 });

    const before = await rowsRead(subject);
    expect(await ingestOk([...first.slice(0, 100), ...batch(100)])).toMatchObject({ accepted: 100, duplicates: 100 });
    const known = (await rowsRead(subject)) - before;

    await evictDurableObject(customerStub(subject));
    const afterRestart = await rowsRead(subject);
    expect(await ingestOk([...first.slice(100), ...batch(100)])).toMatchObject({ accepted: 100, duplicates: 100 });
    const looked = (await rowsRead(subject)) - afterRestart;
    // Looking 100 stored ids up reads at least their 100 index entries; known ones are not read.
    expect(looked - known).toBeGreaterThanOrEqual(100);
    expect(await total(slug, subject)).toBe(400);
  });

  it("a batch mixing known ids, a stored id it does not know, a repeat and new events counts each once", async () => {
    const { type, slug, subject } = await sumMeter();
    const one = (n: number, source = "ri") => event({ type, subject, source, data: { n } });
    const known = [one(1), one(2)];
    await ingestOk(known);
    // Stored by a batch of two sources: a plan without one source's ids, so nothing is remembered.
    const unknown = one(4);
    await ingestOk([unknown, one(8, "other")]);
    expect(await ingestOk([known[0]!, unknown, known[1]!, one(16), known[0]!])).toMatchObject({ accepted: 1, duplicates: 4 });
    // The same again, now that the last batch had a duplicate memory did not know.
    expect(await ingestOk([unknown, known[1]!, one(32)])).toMatchObject({ accepted: 1, duplicates: 2 });
    expect(await total(slug, subject)).toBe(1 + 2 + 4 + 8 + 16 + 32);
  });

  it("learns nothing from a batch whose transaction rolled back", async () => {
    const { type, slug, subject } = await sumMeter();
    await ingestOk([event({ type, subject, data: { n: 1 } })]); // names the object's customer, loads the meter
    const id = { namespace: "default", subject };
    const ids = Array.from({ length: 5 }, () => uid("e"));
    const stub = customerStub(subject);
    const result = await runInDurableObject(stub, async (instance) => {
      const o = instance as unknown as Instance & { ingest: (...a: unknown[]) => Promise<unknown> };
      const now = Date.now();
      const batch = prepareBatch(ids.map((e, index) => ({ index, id: e, source: "ri", type, time: now, data: { n: 10 } })), o.meters);
      const counted = o.counted;
      o.counted = () => {
        throw new Error("fails after the events were inserted");
      };
      const failed = await o.ingest(id, { version: o.meters.version }, batch).then(() => "stored", (e: Error) => e.message);
      o.counted = counted;
      return { failed, known: o.recent.knownPositions("ri", ids), again: await o.ingest(id, { version: o.meters.version }, batch) };
    });
    expect(result.failed).toBe("fails after the events were inserted");
    expect(result.known).toEqual([]);
    expect(result.again).toMatchObject({ accepted: 5, duplicates: 0 });
    expect(await total(slug, subject)).toBe(51);
  });

  it("is dropped when the prune job deletes from the dedupe log", async () => {
    const { type, subject } = await sumMeter();
    const first = Array.from({ length: 3 }, () => event({ type, subject, source: "ri", data: { n: 1 } }));
    await ingestOk(first);
    const stub = customerStub(subject);
    const ids = first.map((e) => e.id as string);
    expect(await runInDurableObject(stub, (i) => (i as unknown as Instance).recent.knownPositions("ri", ids))).toEqual([0, 1, 2]);
    await runInDurableObject(stub, (_i, state) => state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'job:prune'", Date.now() - 1));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await runInDurableObject(stub, (i) => (i as unknown as Instance).recent.knownPositions("ri", ids))).toEqual([]);
  });
});
