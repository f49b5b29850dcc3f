import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, createKey, expectProblem, ingestOk, total } from "../helpers/api";
import { grant, isoAt, MIN, setup, truncMin, usage, valueOk } from "../helpers/entitlements";

const HOUR = 60 * MIN;
const reset = (s: { subject: string; entitlement: any }, body: Record<string, unknown> = {}) =>
  api("POST", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/reset`, { body });
const getEnt = async (s: { subject: string; entitlement: any }) => (await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}`)).body;

describe("grants", () => {
  it("issues grants, burns them by priority, and voids one without giving back what it covered", async () => {
    const now = Date.now();
    const from = truncMin(now - HOUR);
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    expect(await valueOk(s)).toMatchObject({ hasAccess: false, balance: 0 });

    const g1 = await grant(s, { amount: 50, priority: 1, effectiveAt: isoAt(from + 1234), expiration: { duration: "DAY", count: 30 }, metadata: { po: "1" } });
    expect(g1.status, g1.text).toBe(201);
    expect(g1.body).toMatchObject({ amount: 50, priority: 1, effectiveAt: isoAt(from), entitlementId: s.entitlement.id, minRolloverAmount: 0, maxRolloverAmount: 0, metadata: { po: "1" } });
    expect(g1.body.expiresAt).toBe(isoAt(from + 30 * 24 * HOUR));
    const g2 = await grant(s, { amount: 20, priority: 2, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 30 } });
    expect(g2.status).toBe(201);
    expect(await valueOk(s)).toMatchObject({ hasAccess: true, balance: 70, usage: 0, totalAvailableGrantAmount: 70 });

    await ingestOk([usage(s, { tokens: 60 }, { time: isoAt(now - 30 * MIN) })]);
    expect(await valueOk(s)).toMatchObject({ balance: 10, usage: 60, overage: 0 });

    // The priority-1 grant was burned first (50), then 10 of the priority-2 grant: voiding the first leaves 10.
    expect((await api("DELETE", `/api/v1/grants/${g1.body.id}`)).status).toBe(204);
    expect(await valueOk(s)).toMatchObject({ balance: 10, usage: 60, overage: 0 });
    expectProblem(await api("DELETE", `/api/v1/grants/${g1.body.id}`), 409, "conflict");
    expectProblem(await api("DELETE", "/api/v1/grants/01JAAAAAAAAAAAAAAAAAAAAAAA"), 404, "not_found");

    const list = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/grants`);
    expect(list.status).toBe(200);
    expect(list.body.map((g: any) => g.id).sort()).toEqual([g1.body.id, g2.body.id].sort());
    expect(list.body.find((g: any) => g.id === g1.body.id).voidedAt).toBeDefined();
  });

  it("drops an expired grant and carries uncovered usage as overage into the next grant", async () => {
    const now = Date.now();
    const from = truncMin(now - 3 * HOUR);
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    // Active for the first hour only.
    await grant(s, { amount: 100, effectiveAt: isoAt(from), expiration: { duration: "HOUR", count: 1 } });
    await ingestOk([usage(s, { tokens: 30 }, { time: isoAt(from + 30 * MIN) }), usage(s, { tokens: 5 }, { time: isoAt(from + 90 * MIN) })]);
    expect(await valueOk(s)).toMatchObject({ hasAccess: false, balance: 0, usage: 35, overage: 5 });
    // A new grant first pays off the earlier overage.
    await grant(s, { amount: 20, effectiveAt: isoAt(truncMin(now)), expiration: { duration: "DAY", count: 1 } });
    expect(await valueOk(s)).toMatchObject({ hasAccess: true, balance: 15, usage: 35, overage: 0 });
  });

  it("an issueAfterReset grant measured from long ago is not born expired (its 100 years count from now)", async () => {
    const from = new Date(Date.UTC(new Date().getUTCFullYear() - 150, 0, 1)).toISOString();
    const s = await setup({ entitlement: { issueAfterReset: 40, usagePeriod: { interval: "YEAR", anchor: from }, measureUsageFrom: from } });
    const [g] = (await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/grants`)).body;
    expect(g.expiration).toEqual({ duration: "YEAR", count: 250 });
    expect(Date.parse(g.expiresAt)).toBeGreaterThan(Date.now() + 99 * 365 * 86_400_000);
    expect(await valueOk(s)).toMatchObject({ hasAccess: true, balance: 40 });
  });

  it("lists the issueAfterReset grant, annotated, and lets it be voided", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 40, issueAfterResetPriority: 3 } });
    const list = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/grants`);
    expect(list.body).toHaveLength(1);
    expect(list.body[0]).toMatchObject({ amount: 40, priority: 3, minRolloverAmount: 40, maxRolloverAmount: 40, annotations: { issueAfterReset: true } });
    // As OpenMeter makes it: an expiration (required in its API) 100 years after it takes effect.
    const g = list.body[0];
    expect(g.expiration).toEqual({ duration: "YEAR", count: 100 });
    const effective = new Date(g.effectiveAt);
    expect(g.expiresAt).toBe(new Date(Date.UTC(effective.getUTCFullYear() + 100, effective.getUTCMonth(), effective.getUTCDate(), effective.getUTCHours(), effective.getUTCMinutes())).toISOString());
    expect((await api("DELETE", `/api/v1/grants/${list.body[0].id}`)).status).toBe(204);
    expect(await valueOk(s)).toMatchObject({ balance: 0, hasAccess: false });
  });

  it("refuses back-dated, recurring and non-metered grants, and needs admin", async () => {
    const s = await setup({ entitlement: {} });
    const early = await grant(s, { amount: 1, effectiveAt: isoAt(Date.now() - 2 * HOUR), expiration: { duration: "DAY", count: 1 } });
    expectProblem(early, 400, "validation_failed");
    expect(early.body.errors[0].field).toBe("effectiveAt");
    expectProblem(await grant(s, { amount: 1, effectiveAt: isoAt(Date.now()), expiration: { duration: "DAY", count: 1 }, recurrence: { interval: "DAY" } }), 400, "validation_failed");
    expectProblem(await grant(s, { amount: 0, effectiveAt: isoAt(Date.now()), expiration: { duration: "DAY", count: 1 } }), 400, "validation_failed");
    expectProblem(await grant(s, { amount: 1, effectiveAt: isoAt(Date.now()) }), 400, "validation_failed");
    // min above max would never apply (a reset keeps at most max); max defaults to 0 when left out.
    const day = { amount: 10, effectiveAt: isoAt(Date.now()), expiration: { duration: "DAY", count: 1 } };
    for (const rollover of [{ minRolloverAmount: 6, maxRolloverAmount: 5 }, { minRolloverAmount: 5 }]) {
      const inverted = await grant(s, { ...day, ...rollover });
      expectProblem(inverted, 400, "validation_failed");
      expect(inverted.body.errors.map((e: { field: string }) => e.field)).toEqual(["minRolloverAmount"]);
    }
    expect((await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/grants`)).body).toEqual([]);
    for (const rollover of [{ minRolloverAmount: 5, maxRolloverAmount: 5 }, { maxRolloverAmount: 5 }, { minRolloverAmount: 0 }]) {
      expect((await grant(s, { ...day, ...rollover })).status).toBe(201);
    }
    const reader = await createKey({ scopes: ["read"] });
    const denied = await api("POST", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/grants`, { key: reader.key, body: { amount: 1, effectiveAt: isoAt(Date.now()), expiration: { duration: "DAY", count: 1 } } });
    expectProblem(denied, 403, "forbidden");
    expect((await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/grants`, { key: reader.key })).status).toBe(200);

    const subject = s.subject;
    const boolFeature = `b_${Math.random().toString(36).slice(2, 8)}`;
    await api("POST", "/api/v1/features", { body: { key: boolFeature, name: "b" } });
    await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body: { type: "boolean", featureKey: boolFeature } });
    expectProblem(await api("POST", `/api/v1/subjects/${subject}/entitlements/${boolFeature}/grants`, { body: { amount: 1, effectiveAt: isoAt(Date.now()), expiration: { duration: "DAY", count: 1 } } }), 400, "validation_failed");
  });
});

describe("reset", () => {
  it("starts a new period: usage 0, issueAfterReset back to full, the anchor moved unless retained", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100, measureUsageFrom: "CURRENT_PERIOD_START" } });
    const anchor = s.entitlement.usagePeriod.anchor;
    expect(s.entitlement.measureUsageFrom).toBe(anchor);
    await ingestOk([usage(s, { tokens: 30 }, { time: isoAt(Date.now() - 10 * MIN) })]);
    expect(await valueOk(s)).toMatchObject({ usage: 30, balance: 70 });

    expect((await reset(s, { retainAnchor: true })).status).toBe(204);
    expect(await valueOk(s)).toMatchObject({ usage: 0, balance: 100, overage: 0 });
    let e = await getEnt(s);
    expect(e.lastReset).toBe(isoAt(truncMin(Date.now())));
    expect(e.usagePeriod.anchor).toBe(anchor);
    expect(e.currentUsagePeriod.from).toBe(e.lastReset);

    expect((await reset(s)).status).toBe(204);
    e = await getEnt(s);
    expect(e.usagePeriod.anchor).toBe(e.lastReset);
  });

  it("forgives overage by default and preserves it when asked", async () => {
    // A reset takes effect at the start of its minute: the usage here is placed minutes before it.
    const earlier = { time: isoAt(Date.now() - 10 * MIN) };
    const a = await setup({ entitlement: { issueAfterReset: 100, isSoftLimit: true, measureUsageFrom: "CURRENT_PERIOD_START" } });
    await ingestOk([usage(a, { tokens: 120 }, earlier)]);
    expect(await valueOk(a)).toMatchObject({ usage: 120, overage: 20, balance: 0 });
    await reset(a, { preserveOverage: true });
    expect(await valueOk(a)).toMatchObject({ usage: 0, overage: 0, balance: 80 });

    const b = await setup({ entitlement: { issueAfterReset: 100, isSoftLimit: true, preserveOverageAtReset: true, measureUsageFrom: "CURRENT_PERIOD_START" } });
    await ingestOk([usage(b, { tokens: 120 }, earlier)]);
    await reset(b, { preserveOverage: false });
    expect(await valueOk(b)).toMatchObject({ usage: 0, overage: 0, balance: 100 });
  });

  it("rolls a grant over within its min/max rollover amounts", async () => {
    const from = truncMin(Date.now() - HOUR);
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    await grant(s, { amount: 50, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 30 }, maxRolloverAmount: 25 });
    await grant(s, { amount: 10, priority: 2, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 30 }, minRolloverAmount: 10, maxRolloverAmount: 10 });
    await ingestOk([usage(s, { tokens: 20 }, { time: isoAt(from + 10 * MIN) })]);
    expect(await valueOk(s)).toMatchObject({ balance: 40 });
    await reset(s, { retainAnchor: true });
    // 30 left of the first → capped at 25; the second comes back to 10.
    expect(await valueOk(s)).toMatchObject({ balance: 35, usage: 0 });
  });

  it("applies the late-event rule: events before the last reset do not change the current balance", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100, measureUsageFrom: "CURRENT_PERIOD_START" } });
    await reset(s, { effectiveAt: isoAt(Date.now() - 20 * MIN), retainAnchor: true });
    await ingestOk([usage(s, { tokens: 7 }, { time: isoAt(Date.now() - 30 * MIN) })]); // before the reset
    expect(await valueOk(s)).toMatchObject({ usage: 0, balance: 100 });
    await ingestOk([usage(s, { tokens: 9 }, { time: isoAt(Date.now() - 10 * MIN) })]); // late, but inside the current period
    expect(await valueOk(s)).toMatchObject({ usage: 9, balance: 91 });
    expect(await total(s.meter, s.subject)).toBe(16); // both are stored and metered
  });

  it("refuses a reset in the future or before the last reset", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 1 } });
    expectProblem(await reset(s, { effectiveAt: isoAt(Date.now() + 10 * MIN) }), 400, "validation_failed");
    expectProblem(await reset(s, { effectiveAt: isoAt(Date.now() - 10 * HOUR) }), 400, "validation_failed");
    expectProblem(await api("POST", `/api/v1/subjects/${s.subject}/entitlements/nope/reset`, { body: {} }), 404, "not_found");
  });
});

describe("value at a past time", () => {
  it("is computed from the buckets of the period that contained it", async () => {
    const now = Date.now();
    const from = truncMin(now - 2 * HOUR);
    const s = await setup({ entitlement: { issueAfterReset: 100, measureUsageFrom: isoAt(from) } });
    await ingestOk([usage(s, { tokens: 10 }, { time: isoAt(from + 10 * MIN) }), usage(s, { tokens: 5 }, { time: isoAt(from + 50 * MIN) })]);
    expect(await valueOk(s, `?time=${encodeURIComponent(isoAt(from + 30 * MIN))}`)).toMatchObject({ usage: 10, balance: 90 });
    expect(await valueOk(s, `?time=${encodeURIComponent(isoAt(from + 60 * MIN))}`)).toMatchObject({ usage: 15, balance: 85 });
    await reset(s, { effectiveAt: isoAt(from + 90 * MIN), retainAnchor: true });
    await ingestOk([usage(s, { tokens: 3 }, { time: isoAt(from + 100 * MIN) })]);
    expect(await valueOk(s, `?time=${encodeURIComponent(isoAt(from + 80 * MIN))}`)).toMatchObject({ usage: 15, balance: 85 });
    expect(await valueOk(s, `?time=${encodeURIComponent(isoAt(from + 110 * MIN))}`)).toMatchObject({ usage: 3, balance: 97 });
    expect(await valueOk(s)).toMatchObject({ usage: 3, balance: 97 });
    expect(await valueOk(s, `?time=${encodeURIComponent(isoAt(from - HOUR))}`)).toMatchObject({ hasAccess: false, usage: 0, balance: 0 });
  });
});

describe("GET /api/v1/grants (namespace-wide, OpenMeter)", () => {
  it("lists grants across subjects: filters, order, paging; voided ones included, deleted entitlements' only when asked", async () => {
    const from = truncMin(Date.now() - HOUR);
    const a = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    const b = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    const issue = async (s: typeof a, amount: number) => {
      const g = await grant(s, { amount, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 1 } });
      expect(g.status, g.text).toBe(201);
      return g.body;
    };
    const [a1, a2, b1] = [await issue(a, 10), await issue(a, 20), await issue(b, 30)];
    const both = `subject=${a.subject}&subject=${b.subject}`;
    const ids = (res: { body: any }) => (Array.isArray(res.body) ? res.body : res.body.items).map((g: any) => g.id);

    const all = await api("GET", `/api/v1/grants?${both}`);
    expect(all.status, all.text).toBe(200);
    expect(ids(all).sort()).toEqual([a1.id, a2.id, b1.id].sort());
    expect(all.body.find((g: any) => g.id === b1.id)).toMatchObject({ amount: 30, entitlementId: b.entitlement.id });
    expect(ids(await api("GET", `/api/v1/grants?${both}&order=DESC`))).toEqual(ids(all).reverse());
    expect(ids(await api("GET", `/api/v1/grants?${both}&orderBy=id`))).toEqual([a1.id, a2.id, b1.id].sort());
    expect(ids(await api("GET", `/api/v1/grants?feature=${b.feature}`))).toEqual([b1.id]);
    expect(ids(await api("GET", `/api/v1/grants?subject=${a.subject}&feature=${b.feature}`))).toEqual([]);

    const page = await api("GET", `/api/v1/grants?${both}&page=2&pageSize=2`);
    expect(page.body).toMatchObject({ totalCount: 3, page: 2, pageSize: 2 });
    expect(ids(page)).toEqual([ids(all)[2]]);
    expect(ids(await api("GET", `/api/v1/grants?${both}&offset=1&limit=1`))).toEqual([ids(all)[1]]);

    expect((await api("DELETE", `/api/v1/grants/${a1.id}`)).status).toBe(204);
    expect((await api("GET", `/api/v1/grants?subject=${a.subject}`)).body.find((g: any) => g.id === a1.id).voidedAt).toBeDefined();

    expect((await api("DELETE", `/api/v1/subjects/${b.subject}/entitlements/${b.entitlement.id}`)).status).toBe(204);
    expect(ids(await api("GET", `/api/v1/grants?${both}`)).sort()).toEqual([a1.id, a2.id].sort());
    const withDeleted = await api("GET", `/api/v1/grants?${both}&includeDeleted=true`);
    expect(ids(withDeleted).sort()).toEqual([a1.id, a2.id, b1.id].sort());
    expect(withDeleted.body.find((g: any) => g.id === b1.id).deletedAt).toBeDefined();
    expect(withDeleted.body.find((g: any) => g.id === a2.id).deletedAt).toBeUndefined();
  });

  it("orders by updatedAt (the default) as the subject-scoped list does: voiding a grant updates it", async () => {
    const from = truncMin(Date.now() - HOUR);
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    const issue = async (amount: number) => (await grant(s, { amount, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 1 } })).body;
    const [g1, g2] = [await issue(10), await issue(20)];
    await new Promise((r) => setTimeout(r, 5)); // the void's updatedAt is later than g2's
    expect((await api("DELETE", `/api/v1/grants/${g1.id}`)).status).toBe(204);
    const scoped = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/grants`);
    expect(scoped.body.map((g: any) => g.id)).toEqual([g2.id, g1.id]);
    const listed = await api("GET", `/api/v1/grants?subject=${s.subject}`);
    expect(listed.body.map((g: any) => g.id)).toEqual([g2.id, g1.id]);
    expect((await api("GET", `/api/v1/grants?subject=${s.subject}&orderBy=updatedAt&order=DESC`)).body.map((g: any) => g.id)).toEqual([g1.id, g2.id]);
    expect((await api("GET", `/api/v1/grants?subject=${s.subject}&orderBy=createdAt`)).body.map((g: any) => g.id)).toEqual([g1.id, g2.id]);
    const row = await env.DB.prepare("SELECT updated_at AS u FROM grant_index WHERE id = ?").bind(g1.id).first<{ u: number }>();
    expect(row?.u).toBe(Date.parse(scoped.body[1].updatedAt));
  });

  it("repairs a grant_index row whose updatedAt is behind its object's (a void whose D1 write failed, older code)", async () => {
    const from = truncMin(Date.now() - HOUR);
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    const issue = async (amount: number) => (await grant(s, { amount, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 1 } })).body;
    const [g1, g2] = [await issue(10), await issue(20)];
    await new Promise((r) => setTimeout(r, 5));
    expect((await api("DELETE", `/api/v1/grants/${g1.id}`)).status).toBe(204);
    // As if the void's index write had failed, or migration 0010 had backfilled it from created_at.
    await env.DB.prepare("UPDATE grant_index SET updated_at = created_at WHERE id = ?").bind(g1.id).run();
    const path = `/api/v1/grants?subject=${s.subject}`;
    let order = (await api("GET", path)).body.map((g: any) => g.id);
    for (let i = 0; i < 20 && order[0] !== g2.id; i++) order = (await api("GET", path)).body.map((g: any) => g.id);
    expect(order).toEqual([g2.id, g1.id]);
  });

  it("subject-scoped: includeDeleted=true lists a deleted entitlement's grants by its id; without it, 404", async () => {
    const from = truncMin(Date.now() - HOUR);
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(from) } });
    const g = (await grant(s, { amount: 7, effectiveAt: isoAt(from), expiration: { duration: "DAY", count: 1 } })).body;
    expect((await api("DELETE", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}`)).status).toBe(204);
    const path = `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/grants`;
    expectProblem(await api("GET", path), 404, "not_found");
    expectProblem(await api("GET", `${path}?includeDeleted=false`), 404, "not_found");
    const listed = await api("GET", `${path}?includeDeleted=true`);
    expect(listed.status, listed.text).toBe(200);
    expect(listed.body.map((x: any) => x.id)).toEqual([g.id]);
    expect(listed.body[0]).toMatchObject({ amount: 7, entitlementId: s.entitlement.id });
    expectProblem(await api("GET", `${path}?includeDeleted=yes`), 400, "validation_failed");
  });

  it("lists the issueAfterReset grant under its feature", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    const listed = await api("GET", `/api/v1/grants?feature=${s.feature}`);
    expect(listed.body).toHaveLength(1);
    expect(listed.body[0]).toMatchObject({ amount: 100, entitlementId: s.entitlement.id });
  });

  it("lists a grant whose entitlement the index does not know (issued before migration 0007), but matches it to no feature", async () => {
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(truncMin(Date.now() - HOUR)) } });
    const g = (await grant(s, { amount: 5, effectiveAt: isoAt(truncMin(Date.now() - HOUR)), expiration: { duration: "DAY", count: 1 } })).body;
    await env.DB.prepare("UPDATE grant_index SET entitlement_id = NULL WHERE id = ?").bind(g.id).run();
    const listed = await api("GET", `/api/v1/grants?subject=${s.subject}`);
    expect(listed.body.map((x: any) => x.id)).toEqual([g.id]);
    expect(listed.body[0]).toMatchObject({ amount: 5, entitlementId: s.entitlement.id });
    expect((await api("GET", `/api/v1/grants?feature=${s.feature}`)).body).toEqual([]);
  });

  it("answers only the key's namespace, needs the read scope, and refuses bad parameters with 400", async () => {
    const s = await setup({ entitlement: { measureUsageFrom: isoAt(truncMin(Date.now() - HOUR)) } });
    expect((await grant(s, { amount: 5, effectiveAt: isoAt(truncMin(Date.now() - HOUR)), expiration: { duration: "DAY", count: 1 } })).status).toBe(201);
    const other = await createKey({ scopes: ["read"], namespace: `ns${Date.now().toString(36)}` });
    expect((await api("GET", `/api/v1/grants?subject=${s.subject}`, { key: other.key })).body).toEqual([]);
    const ingestOnly = await createKey({ scopes: ["ingest"] });
    expectProblem(await api("GET", "/api/v1/grants", { key: ingestOnly.key }), 403, "forbidden");
    expectProblem(await api("GET", "/api/v1/grants?orderBy=amount"), 400, "validation_failed");
    expectProblem(await api("GET", "/api/v1/grants?pageSize=1001"), 400, "validation_failed");
    expectProblem(await api("GET", "/api/v1/grants?limit=1001"), 400, "validation_failed");
    // OpenMeter's largest page, 1,000, is served and echoed.
    const paged = await api("GET", `/api/v1/grants?subject=${s.subject}&pageSize=1000`);
    expect(paged.status, paged.text).toBe(200);
    expect(paged.body).toMatchObject({ totalCount: 1, page: 1, pageSize: 1000 });
    expect(paged.body.items).toHaveLength(1);
    const ranged = await api("GET", `/api/v1/grants?subject=${s.subject}&limit=1000`);
    expect(ranged.status, ranged.text).toBe(200);
    expect(ranged.body).toHaveLength(1);
    expectProblem(await api("GET", `/api/v1/grants?${Array.from({ length: 26 }, (_, i) => `subject=s${i}`).join("&")}`), 400, "validation_failed");
  });
});
