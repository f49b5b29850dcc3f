import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { CustomerDO } from "../../src/customer/do";
import { ingestBatch } from "../../src/customer/ingest";
import { Sql } from "../../src/customer/sql";
import { api, customerStub, expectProblem, ingestOk, uid } from "../helpers/api";
import { check, setup, usage, valueOk } from "../helpers/entitlements";

// The hot path keeps entitlement rows, grants and fired thresholds in memory between batches
// (Sql.memo); these check that the memory never outlives the rows it mirrors.
describe("memoised rows", () => {
  it("are read again after a transaction rolled back", async () => {
    await runInDurableObject(customerStub(uid("memo")), (_, state) => {
      const sql = new Sql(state.storage);
      let loads = 0;
      const load = () => ({ n: ++loads });
      expect(sql.memo("k", load)).toEqual({ n: 1 });
      expect(sql.memo("k", load)).toEqual({ n: 1 });
      expect(() =>
        sql.transaction(() => {
          sql.memo("k", load).n = 99;
          throw new Error("the batch failed");
        }),
      ).toThrow("the batch failed");
      expect(sql.memo("k", load)).toEqual({ n: 2 });
      sql.forget("k");
      expect(sql.peek("k")).toBeUndefined();
    });
  });

  it("a counted batch that was rolled back leaves the entitlement's usage as it was", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    const first = usage(s, { tokens: 5 });
    await valueOk(s);
    const ingested = await runInDurableObject(customerStub(s.subject), async (instance: CustomerDO) => {
      const o = instance as unknown as { sql: Sql; meters: { set: never }; counted(o: unknown, now: number): void };
      const now = Date.now();
      const toEvent = (e: Record<string, unknown>, index: number) => ({ index, id: e.id as string, source: e.source as string, type: e.type as string, time: now, data: e.data as Record<string, unknown> });
      // The same statements as an ingest RPC, in a transaction that fails after the counters moved.
      expect(() =>
        o.sql.transaction(() => {
          const outcome = ingestBatch(o.sql, o.meters.set, [toEvent(usage(s, { tokens: 40 }), 0)], now, 86_400_000);
          expect(outcome.accepted).toBe(1);
          o.counted(outcome, now);
          throw new Error("the batch failed");
        }),
      ).toThrow("the batch failed");
      return o.sql.transaction(() => {
        const outcome = ingestBatch(o.sql, o.meters.set, [toEvent(first, 0)], now, 86_400_000);
        o.counted(outcome, now);
        return outcome.accepted;
      });
    });
    expect(ingested).toBe(1);
    expect(await valueOk(s)).toMatchObject({ usage: 5, balance: 95 });
  });

  it("a deleted entitlement stops counting and answering at once, and a new one for the feature starts from its own state", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    // Counting and checking put the entitlement in memory.
    await ingestOk([usage(s, { tokens: 4 })]);
    expect((await check({ subject: s.subject, feature: s.feature, amount: 1 })).body).toMatchObject({ allowed: true, balance: 6 });
    const path = `/api/v1/subjects/${s.subject}/entitlements`;
    expect((await api("DELETE", `${path}/${s.entitlement.id}`)).status).toBe(204);
    expectProblem(await check({ subject: s.subject, feature: s.feature, amount: 1 }), 404, "not_found");
    expectProblem(await api("GET", `${path}/${s.feature}/value`), 404, "not_found");

    await ingestOk([usage(s, { tokens: 1 })]);
    const anchor = new Date(Date.now() - 86_400_000).toISOString();
    const body = { type: "metered", featureKey: s.feature, issueAfterReset: 20, usagePeriod: { interval: "MONTH", anchor }, measureUsageFrom: "CURRENT_PERIOD_START" };
    const again = await api("POST", path, { body });
    expect(again.status, again.text).toBe(201);
    // Its usage is the buckets' (both events), not the deleted entitlement's counters.
    expect((await check({ subject: s.subject, feature: s.feature, amount: 1 })).body).toMatchObject({ allowed: true, entitlementId: again.body.id, usage: 5, balance: 15 });
  });

  it("a check that only decides runs no statement once the object has read its entitlement", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    await ingestOk([usage(s, { tokens: 4 })]);
    const statements = await runInDurableObject(customerStub(s.subject), async (instance: CustomerDO) => {
      const o = instance as unknown as { sql: Sql; meters: { version: number } };
      const id = { namespace: "default", subject: s.subject };
      const decide = () => instance.check(id, { version: o.meters.version }, { feature: s.feature, amount: 1, event: null });
      expect(await decide()).toMatchObject({ ok: true, value: { allowed: true, balance: 6 } });
      const before = o.sql.snapshot().statements;
      expect(await decide()).toMatchObject({ ok: true, value: { allowed: true, balance: 6 } });
      return o.sql.snapshot().statements - before;
    });
    expect(statements).toBe(0);
  });
});
