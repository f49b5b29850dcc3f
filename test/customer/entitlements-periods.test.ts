import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { countEntitlementUsage } from "../../src/customer/counters";
import { findEntitlement } from "../../src/customer/entitlements";
import { ingestBatch } from "../../src/customer/ingest";
import { entitlementValue } from "../../src/customer/operations";
import type { Sql } from "../../src/customer/sql";
import type { MeterSet } from "../../src/domain/metering";
import { customerStub, ingestOk } from "../helpers/api";
import { check, grant, isoAt, MIN, setup, truncMin, usage, valueOk, type Setup } from "../helpers/entitlements";

/**
 * Period roll-over needs time to pass: these tests run the Durable Object's own entitlement code
 * inside the object with an explicit `now` in the future, against state made through the HTTP API.
 */
const DAY = 86_400_000;

interface Inside {
  sql: Sql;
  meters: MeterSet;
}

function inside<T>(s: Setup, fn: (x: Inside) => T): Promise<T> {
  return runInDurableObject(customerStub(s.subject), (instance) => {
    const o = instance as unknown as { sql: Sql; meters: { set: MeterSet } };
    return fn({ sql: o.sql, meters: o.meters.set });
  });
}

function valueAt(x: Inside, s: Setup, now: number, time: number | null = null) {
  const r = entitlementValue(x.sql, s.feature, time, now);
  if (!r.ok) throw new Error(r.detail);
  return r.value;
}

/** A DAY-period entitlement anchored at the last minute boundary: periods end at the same time each day. */
async function daily(entitlement: Record<string, unknown>): Promise<Setup & { anchor: number }> {
  const anchor = truncMin(Date.now() - 5 * MIN);
  const s = await setup({ entitlement: { usagePeriod: { interval: "DAY", anchor: isoAt(anchor) }, measureUsageFrom: isoAt(anchor), ...entitlement } });
  return { ...s, anchor };
}

describe("usage periods roll over by themselves", () => {
  it("rolls grants over at the anchor, lazily, on the first call after the period ends", async () => {
    const s = await daily({ issueAfterReset: 10 });
    const g = await grant(s, { amount: 100, effectiveAt: isoAt(s.anchor), expiration: { duration: "YEAR", count: 1 }, maxRolloverAmount: 100 });
    expect(g.status, g.text).toBe(201);
    await ingestOk([usage(s, { tokens: 30 })]);
    await inside(s, (x) => {
      // Nearest expiry burns first: the 100-grant (expires in a year) before the default grant (never expires).
      expect(valueAt(x, s, Date.now())).toMatchObject({ usage: 30, balance: 80 });
      const e0 = findEntitlement(x.sql, s.feature)!;
      expect(e0.segEnd).toBe(s.anchor + DAY);

      // A day later: 70 rolls over (cap 100), the default grant comes back to 10, usage restarts.
      expect(valueAt(x, s, s.anchor + DAY + 1)).toMatchObject({ usage: 0, balance: 80, overage: 0 });
      const e1 = findEntitlement(x.sql, s.feature)!;
      expect([e1.segStart, e1.segEnd]).toEqual([s.anchor + DAY, s.anchor + 2 * DAY]);
      // The closed period is still answerable at a past time.
      expect(valueAt(x, s, s.anchor + DAY + 1, s.anchor + DAY - MIN)).toMatchObject({ usage: 30, balance: 80 });
    });
  });

  it("catches up on every period an idle entitlement missed, in order", async () => {
    const s = await daily({ issueAfterReset: 5 });
    await inside(s, (x) => {
      expect(valueAt(x, s, s.anchor + 400 * DAY + 7)).toMatchObject({ usage: 0, balance: 5 });
      const e = findEntitlement(x.sql, s.feature)!;
      expect(e.segStart).toBe(s.anchor + 400 * DAY);
      const periods = x.sql.one<{ n: number }>("SELECT count(*) AS n FROM entitlement_periods WHERE entitlement_id = ?", e.id)!.n;
      expect(periods).toBe(401);
    });
  });

  it("carries overage into the next period with preserveOverageAtReset", async () => {
    const s = await daily({ issueAfterReset: 10, isSoftLimit: true, preserveOverageAtReset: true });
    await ingestOk([usage(s, { tokens: 15 })]);
    await inside(s, (x) => {
      expect(valueAt(x, s, Date.now())).toMatchObject({ usage: 15, overage: 5, balance: 0 });
      expect(valueAt(x, s, s.anchor + DAY)).toMatchObject({ usage: 0, overage: 0, balance: 5 });
    });
  });

  it("rolls over inside the ingest transaction: a late event for the closed period stays out of the new one", async () => {
    const s = await daily({ issueAfterReset: 100 });
    await ingestOk([usage(s, { tokens: 1 })]);
    await inside(s, (x) => {
      const later = s.anchor + DAY + 10 * MIN;
      const ev = (id: string, time: number, tokens: number) => ({ index: 0, id, source: "t", type: s.eventType, time, data: { tokens } });
      // One batch, arriving after the period ended: one event late for the old period, one in the new.
      x.sql.transaction(() => {
        const o = ingestBatch(x.sql, x.meters, [ev("late", s.anchor + DAY - MIN, 20), { ...ev("new", later - MIN, 3), index: 1 }], later, 35 * DAY);
        expect(o.accepted).toBe(2);
        countEntitlementUsage(x.sql, o.buckets, later);
      });
      expect(valueAt(x, s, later)).toMatchObject({ usage: 3, balance: 97 });
      // Counted exactly once: the counters equal the buckets of the new period.
      const e = findEntitlement(x.sql, s.feature)!;
      expect(e.phases.reduce((a, [, u]) => a + u, 0)).toBe(3);
    });
  });

  it("keeps counters in storage, not memory: an evicted object answers the same", async () => {
    const s = await daily({ issueAfterReset: 10 });
    await ingestOk([usage(s, { tokens: 3 })]);
    expect((await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: 4 }) })).body.allowed).toBe(true);
    await evictDurableObject(customerStub(s.subject));
    expect(await valueOk(s)).toMatchObject({ usage: 7, balance: 3 });
    expect((await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: 4 }) })).body.allowed).toBe(false);
  });
});
