import { describe, expect, it } from "vitest";
import { api, expectProblem, HOUR, ingestOk, MINUTE, uid } from "../helpers/api";
import { isoAt, setup, usage, type Setup } from "../helpers/entitlements";

const history = (s: Setup, query: string) => api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/history?${query}`);

/** Three hours ago, on the hour: events at h0+5m (10 tokens), h0+65m (20) and h0+125m (30). */
async function threeHours(entitlement: Record<string, unknown>) {
  const s = await setup({ entitlement: { measureUsageFrom: "CURRENT_PERIOD_START", ...entitlement } });
  const h0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
  await ingestOk([10, 20, 30].map((tokens, i) => usage(s, { tokens }, { time: isoAt(h0 + i * HOUR + 5 * MINUTE) })));
  return { s, h0, range: `from=${isoAt(h0)}&to=${isoAt(h0 + 3 * HOUR)}` };
}

const span = (from: number, to: number) => ({ from: isoAt(from), to: isoAt(to) });

describe("entitlement history (OpenMeter's GET …/entitlements/{entitlementId}/history)", () => {
  it("windows usage with the balance at each window's start, and burns the grant down over the range", async () => {
    const { s, h0, range } = await threeHours({ issueAfterReset: 100 });
    // A grant that expired before the range: no balance of it is listed.
    const gone = await api("POST", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/grants`, { body: { amount: 5, priority: 1, effectiveAt: isoAt(h0 - 2 * HOUR), expiration: { duration: "HOUR", count: 1 } } });
    expect(gone.status, gone.text).toBe(201);
    const r = await history(s, `${range}&windowSize=HOUR`);
    expect(r.status, r.text).toBe(200);
    expect(r.body.windowedHistory).toEqual([
      { period: span(h0, h0 + HOUR), usage: 10, balanceAtStart: 100 },
      { period: span(h0 + HOUR, h0 + 2 * HOUR), usage: 20, balanceAtStart: 90 },
      { period: span(h0 + 2 * HOUR, h0 + 3 * HOUR), usage: 30, balanceAtStart: 70 },
    ]);
    const grant = (await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/grants`)).body.find((g: any) => g.amount === 100).id;
    expect(r.body.burndownHistory).toEqual([
      {
        period: span(h0, h0 + 3 * HOUR),
        usage: 60,
        overage: 0,
        balanceAtStart: 100,
        grantBalancesAtStart: { [grant]: 100 },
        balanceAtEnd: 40,
        grantBalancesAtEnd: { [grant]: 40 },
        grantUsages: [{ grantId: grant, usage: 60 }],
      },
    ]);

    // Only windows with usage; by feature key too; the default range is the current period up to now.
    const days = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/history?windowSize=DAY`);
    expect(days.status, days.text).toBe(200);
    expect(days.body.windowedHistory.reduce((n: number, w: any) => n + w.usage, 0)).toBe(60);
    expect(days.body.burndownHistory.at(-1).balanceAtEnd).toBe(40);
    // A day of minutes is more windows than one request answers.
    expectProblem(await history(s, "windowSize=MINUTE"), 400, "validation_failed");
  });

  it("refuses a range of more than 1,000 burn-down segments (here daily periods since 1,000 days ago)", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 1, usagePeriod: { interval: "DAY" }, measureUsageFrom: isoAt(Date.now() - 999.5 * 86_400_000) } });
    const all = await history(s, `from=${isoAt(Date.now() - 1000 * 86_400_000)}&windowSize=MONTH`);
    expectProblem(all, 400, "validation_failed");
    expect(all.body.detail).toContain("burn-down segments");
    const recent = await history(s, `from=${isoAt(Date.now() - 10 * 86_400_000)}&windowSize=MONTH`);
    expect(recent.status, recent.text).toBe(200);
    expect(recent.body.burndownHistory.length).toBeGreaterThanOrEqual(10);
  });

  it("cuts the burn-down where a grant becomes active and where a reset starts a period; balances agree with value?time=", async () => {
    const { s, h0, range } = await threeHours({ issueAfterReset: 100, issueAfterResetPriority: 5 });
    const grants = `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/grants`;
    const extra = await api("POST", grants, { body: { amount: 50, priority: 1, effectiveAt: isoAt(h0 + HOUR), expiration: { duration: "DAY", count: 1 } } });
    expect(extra.status, extra.text).toBe(201);
    const base = (await api("GET", grants)).body.find((g: any) => g.id !== extra.body.id).id;

    const before = await history(s, `${range}&windowSize=HOUR`);
    expect(before.body.burndownHistory.map((b: any) => [b.period, b.usage, b.balanceAtStart, b.balanceAtEnd, b.grantUsages])).toEqual([
      [span(h0, h0 + HOUR), 10, 100, 90, [{ grantId: base, usage: 10 }]],
      // The new grant (priority 1) burns first once active.
      [span(h0 + HOUR, h0 + 3 * HOUR), 50, 140, 90, [{ grantId: extra.body.id, usage: 50 }]],
    ]);
    expect(before.body.burndownHistory[1].grantBalancesAtEnd).toEqual({ [base]: 90, [extra.body.id]: 0 });
    expect(before.body.windowedHistory.map((w: any) => w.balanceAtStart)).toEqual([100, 140, 120]);

    const reset = await api("POST", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/reset`, { body: { effectiveAt: isoAt(h0 + 2 * HOUR) } });
    expect(reset.status, reset.text).toBe(204);
    const after = await history(s, `${range}&windowSize=HOUR`);
    expect(after.body.burndownHistory.map((b: any) => b.period)).toEqual([span(h0, h0 + HOUR), span(h0 + HOUR, h0 + 2 * HOUR), span(h0 + 2 * HOUR, h0 + 3 * HOUR)]);
    // Usage is measured from the reset in the new period.
    expect(after.body.windowedHistory.map((w: any) => w.usage)).toEqual([10, 20, 30]);
    expect(after.body.burndownHistory[2].usage).toBe(30);
    for (const w of after.body.windowedHistory) {
      const v = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/value?time=${w.period.from}`);
      expect(w.balanceAtStart, w.period.from).toBe(v.body.balance);
    }
  });

  it("counts a UNIQUE_COUNT window's distinct values, and burns each value down once per period", async () => {
    const s = await setup({ aggregation: "UNIQUE_COUNT", entitlement: { issueAfterReset: 100, measureUsageFrom: "CURRENT_PERIOD_START" } });
    const h0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const seen = [["a"], ["a", "b"], ["b", "c"]];
    await ingestOk(seen.flatMap((users, i) => users.map((user) => usage(s, { user }, { time: isoAt(h0 + i * HOUR + 5 * MINUTE) }))));
    // First seen on the very minute the third window starts: it belongs to that window, not before it.
    await ingestOk([usage(s, { user: "d" }, { time: isoAt(h0 + 2 * HOUR) })]);
    const r = await history(s, `from=${isoAt(h0)}&to=${isoAt(h0 + 3 * HOUR)}&windowSize=HOUR`);
    expect(r.body.windowedHistory.map((w: any) => [w.usage, w.balanceAtStart])).toEqual([[1, 100], [2, 99], [3, 98]]);
    expect(r.body.burndownHistory.map((b: any) => b.usage)).toEqual([4]);
  });

  it("reports a LATEST window's latest value, and the balance at each window's start from the latest value before it", async () => {
    const s = await setup({ aggregation: "LATEST", entitlement: { issueAfterReset: 100, measureUsageFrom: "CURRENT_PERIOD_START" } });
    const h0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    await ingestOk([10, 30, 20].map((tokens, i) => usage(s, { tokens }, { time: isoAt(h0 + i * HOUR + 5 * MINUTE) })));
    const r = await history(s, `from=${isoAt(h0)}&to=${isoAt(h0 + 3 * HOUR)}&windowSize=HOUR`);
    expect(r.body.windowedHistory.map((w: any) => [w.usage, w.balanceAtStart])).toEqual([[10, 100], [30, 90], [20, 70]]);
    expect(r.body.burndownHistory.map((b: any) => [b.usage, b.balanceAtEnd])).toEqual([[20, 80]]);
  });

  it("answers 404 for an unknown entitlement or subject, 400 for a bad query or a flag", async () => {
    const { s, h0 } = await threeHours({ issueAfterReset: 10 });
    expectProblem(await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${uid("none")}/history?windowSize=HOUR`), 404, "not_found");
    expectProblem(await api("GET", `/api/v1/subjects/${uid("nobody")}/entitlements/${s.feature}/history?windowSize=HOUR`), 404, "not_found");
    for (const bad of ["", "windowSize=WEEK", "windowSize=HOUR&windowTimeZone=Mars/Base", `windowSize=HOUR&from=${isoAt(h0 + HOUR)}&to=${isoAt(h0)}`, "windowSize=HOUR&from=yesterday", `windowSize=HOUR&from=${isoAt(h0).replace(".000Z", ".0000000001Z")}`]) {
      expectProblem(await history(s, bad), 400, "validation_failed");
    }
    const flag = uid("flag");
    expect((await api("POST", "/api/v1/features", { body: { key: flag, name: flag } })).status).toBe(201);
    expect((await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "boolean", featureKey: flag } })).status).toBe(201);
    expectProblem(await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${flag}/history?windowSize=HOUR`), 400, "validation_failed");

    // Windows in a time zone: Kolkata's hours start on the half hour (UTC+5:30).
    const kolkata = await history(s, `from=${isoAt(h0)}&to=${isoAt(h0 + 3 * HOUR)}&windowSize=HOUR&windowTimeZone=Asia/Kolkata`);
    expect(kolkata.body.windowedHistory.map((w: any) => [w.period.from, w.usage])).toEqual([
      [isoAt(h0), 10],
      [isoAt(h0 + 30 * MINUTE), 20],
      [isoAt(h0 + 90 * MINUTE), 30],
    ]);
    // The ends of time are clamped to what was measured: from the first period, up to now.
    const wide = await history(s, "from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.999999999Z&windowSize=DAY&windowTimeZone=America/New_York");
    expect(wide.status, wide.text).toBe(200);
    expect(wide.body.windowedHistory.reduce((n: number, w: any) => n + w.usage, 0)).toBe(60);
    const doc = (await api("GET", "/openapi.json", { key: null })).body;
    expect(doc.paths["/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/history"].get).toBeDefined();
  });
});
