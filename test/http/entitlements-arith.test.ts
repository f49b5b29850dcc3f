import { describe, expect, it } from "vitest";
import { api, ingestOk } from "../helpers/api";
import { check, grant, isoAt, MIN, setup, truncMin, usage, valueOk } from "../helpers/entitlements";

const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const createEnt = async (s: { subject: string; feature: string }, body: Record<string, unknown>) => {
  const e = await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "metered", featureKey: s.feature, ...body } });
  expect(e.status, e.text).toBe(201);
  return e.body;
};

/** A subject measured from an hour back, with one grant of `amount` effective then, for a day: usage can be placed at minutes after `from`. */
async function granted(amount: number) {
  const from = truncMin(Date.now() - HOUR);
  const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
  expect((await grant(s, { amount, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 1 } })).status).toBe(201);
  return { s, from };
}

describe("entitlement arithmetic", () => {
  it("carries overage through automatic period rollovers with preserveOverageAtReset", async () => {
    const day0 = Math.floor(Date.now() / DAY) * DAY - 2 * DAY;
    const s = await setup({ entitlement: null });
    await ingestOk([usage(s, { tokens: 15 }, { time: isoAt(day0 + HOUR) }), usage(s, { tokens: 17 }, { time: isoAt(day0 + DAY + HOUR) })]);
    const e = await createEnt(s, { issueAfterReset: 10, isSoftLimit: true, preserveOverageAtReset: true, usagePeriod: { interval: "DAY", anchor: isoAt(day0) }, measureUsageFrom: isoAt(day0) });
    // day 0: 15 of 10 → overage 5. day 1: 10 - 5 = 5, usage 17 → overage 12. today: 10 - 12 → 0, overage 2.
    expect(await valueOk(s)).toMatchObject({ balance: 0, usage: 0, overage: 2 });
    expect(await valueOk(s, `?time=${encodeURIComponent(isoAt(day0 + DAY + 30 * MIN))}`)).toMatchObject({ balance: 5, usage: 0, overage: 0 });
    expect(await valueOk(s, `?time=${encodeURIComponent(isoAt(day0 + DAY + 2 * HOUR))}`)).toMatchObject({ balance: 0, usage: 17, overage: 12 });
    const h = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${e.id}/history?windowSize=DAY&from=${encodeURIComponent(isoAt(day0))}`);
    expect(h.status, h.text).toBe(200);
    expect(h.body.windowedHistory.map((w: any) => [w.usage, w.balanceAtStart])).toEqual([[15, 10], [17, 5]]);
    expect(h.body.burndownHistory.map((b: any) => [b.usage, b.overage, b.balanceAtStart, b.balanceAtEnd])).toEqual([[15, 5, 10, 0], [17, 12, 5, 0], [0, 0, 0, 0]]);
  });

  it("balances of fractional usage are exact: 1 - 3 × 0.1 = 0.7, and a check of 0.7 fits", async () => {
    const { s, from } = await granted(1);
    for (let i = 1; i <= 3; i++) await ingestOk([usage(s, { tokens: 0.1 }, { time: isoAt(from + i * MIN) })]);
    expect(await valueOk(s)).toMatchObject({ balance: 0.7 });
    expect((await check({ subject: s.subject, feature: s.feature, amount: 0.7 })).body).toMatchObject({ allowed: true });
  });

  // The running counters add batch deltas one by one while the buckets' SQL total() compensates for
  // rounding: the counters' usage was 0.6000000000000001, the balance 0.3999999999999999, and a check
  // of 0.4 was refused (settle() in src/domain/values.ts).
  it("a hard-limit check decides on usage to 15 significant digits: grant 1, usage 0.1 + 0.2 + 0.3, a check of 0.4 fits", async () => {
    const { s, from } = await granted(1);
    for (const [i, v] of [0.1, 0.2, 0.3].entries()) await ingestOk([usage(s, { tokens: v }, { time: isoAt(from + (i + 1) * MIN) })]);
    expect(await valueOk(s)).toMatchObject({ usage: 0.6, balance: 0.4 });
    expect((await check({ subject: s.subject, feature: s.feature, amount: 0.4 })).body).toMatchObject({ allowed: true });
  });

  // Counters said usage 0.9999999999999999, value?time= (buckets) 1.
  it("value from the counters agrees with value?time= from the buckets for fractional usage", async () => {
    const { s, from } = await granted(2);
    for (let i = 1; i <= 10; i++) await ingestOk([usage(s, { tokens: 0.1 }, { time: isoAt(from + i * MIN) })]);
    const cur = await valueOk(s);
    const past = await valueOk(s, `?time=${encodeURIComponent(isoAt(from + 20 * MIN))}`);
    expect(past).toMatchObject({ balance: cur.balance, usage: cur.usage });
  });

  it("burns the grant that expires first among equal priorities", async () => {
    const from = truncMin(Date.now() - HOUR);
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    await grant(s, { amount: 10, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 30 } });
    const soon = await grant(s, { amount: 10, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 1 } });
    await ingestOk([usage(s, { tokens: 5 }, { time: isoAt(from + 10 * MIN) })]);
    expect(await valueOk(s)).toMatchObject({ balance: 15 });
    expect((await api("DELETE", `/api/v1/grants/${soon.body.id}`)).status).toBe(204);
    expect(await valueOk(s)).toMatchObject({ balance: 10 });
  });

  it("rolls over at a reset within min/max rollover amounts, an exhausted grant keeping nothing", async () => {
    const t = truncMin(Date.now() - 30 * MIN);
    const s2 = await setup({ entitlement: { measureUsageFrom: isoAt(t) } });
    await grant(s2, { amount: 10, effectiveAt: isoAt(t), expiration: { duration: "HOUR", count: 1 }, maxRolloverAmount: 10 });
    await grant(s2, { amount: 20, priority: 2, effectiveAt: isoAt(t), expiration: { duration: "DAY", count: 1 }, minRolloverAmount: 3, maxRolloverAmount: 6 });
    await ingestOk([usage(s2, { tokens: 25 }, { time: isoAt(t + MIN) })]);
    expect(await valueOk(s2)).toMatchObject({ balance: 5 });
    await api("POST", `/api/v1/subjects/${s2.subject}/entitlements/${s2.feature}/reset`, { body: { retainAnchor: true } });
    // first: 0 left → min(10, max(0, 0)) = 0; second: 5 left → min(6, max(3, 5)) = 5.
    expect(await valueOk(s2)).toMatchObject({ balance: 5, usage: 0 });
  });
});
