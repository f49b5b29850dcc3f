import { describe, expect, it } from "vitest";
import { api, createKey, createMeter, expectProblem, ingestOk, total, uid } from "../helpers/api";
import { isoAt, MIN, setup, truncMin, usage, value, valueOk } from "../helpers/entitlements";

describe("features", () => {
  it("creates, lists, gets by id or key, and archives", async () => {
    const meter = uid("m");
    await createMeter({ slug: meter, eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
    const key = uid("f");
    const created = await api("POST", "/api/v1/features", { body: { key, name: "AI tokens", meterSlug: meter, meterGroupByFilters: { model: "gpt" }, metadata: { a: "b" } } });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ key, name: "AI tokens", meterSlug: meter, meterGroupByFilters: { model: "gpt" }, metadata: { a: "b" } });
    expect(created.body.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);

    expect((await api("GET", `/api/v1/features/${created.body.id}`)).body.key).toBe(key);
    expect((await api("GET", `/api/v1/features/${key}`)).body.id).toBe(created.body.id);
    const byMeter = await api("GET", `/api/v1/features?meterSlug=${meter}`);
    expect(byMeter.body.map((f: any) => f.key)).toEqual([key]);

    expectProblem(await api("POST", "/api/v1/features", { body: { key, name: "again" } }), 409, "conflict");

    expect((await api("DELETE", `/api/v1/features/${key}`)).status).toBe(204);
    const archived = await api("GET", `/api/v1/features/${created.body.id}`);
    expect(archived.body.archivedAt).toBeDefined();
    expectProblem(await api("GET", `/api/v1/features/${key}`), 404, "not_found");
    expect((await api("GET", "/api/v1/features")).body.some((f: any) => f.key === key)).toBe(false);
    expect((await api("GET", "/api/v1/features?includeArchived=true")).body.some((f: any) => f.key === key)).toBe(true);
    // The key is free again, and an archived feature gets no new entitlements.
    expect((await api("POST", "/api/v1/features", { body: { key, name: "v2" } })).status).toBe(201);
    const ent = await api("POST", `/api/v1/subjects/${uid("s")}/entitlements`, { body: { type: "boolean", featureId: created.body.id } });
    expectProblem(ent, 400, "validation_failed");
    expect(ent.body.detail).toContain("archived");
  });

  it("lists in pages (OpenMeter's page/pageSize envelope) and in any order; a plain array without them", async () => {
    const meter = uid("m");
    await createMeter({ slug: meter, eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens" });
    const keys = [uid("f_c"), uid("f_a"), uid("f_b")];
    for (const key of keys) expect((await api("POST", "/api/v1/features", { body: { key, name: key.slice(0, 3), meterSlug: meter } })).status).toBe(201);
    const byKey = [...keys].sort();
    const first = await api("GET", `/api/v1/features?meterSlug=${meter}&pageSize=2`);
    expect(first.status, first.text).toBe(200);
    expect(first.body).toMatchObject({ totalCount: 3, page: 1, pageSize: 2 });
    expect(first.body.items.map((f: any) => f.key)).toEqual(byKey.slice(0, 2));
    const second = await api("GET", `/api/v1/features?meterSlug=${meter}&pageSize=2&page=2`);
    expect(second.body.items.map((f: any) => f.key)).toEqual(byKey.slice(2));
    expect((await api("GET", `/api/v1/features?meterSlug=${meter}&page=3&pageSize=2`)).body.items).toEqual([]);
    const newestFirst = await api("GET", `/api/v1/features?meterSlug=${meter}&orderBy=createdAt&order=DESC`);
    const created = newestFirst.body.map((f: any) => f.createdAt);
    expect(created).toEqual([...created].sort().reverse());
    expect(newestFirst.body.map((f: any) => f.key).sort()).toEqual(byKey);
    const byNameDesc = await api("GET", `/api/v1/features?meterSlug=${meter}&orderBy=key&order=DESC`);
    expect(byNameDesc.body.map((f: any) => f.key)).toEqual([...byKey].reverse());
    for (const bad of ["page=0", "page=abc", "pageSize=-1", "pageSize=1e9", "pageSize=1001", "order=UP", "orderBy=meter"]) {
      expectProblem(await api("GET", `/api/v1/features?${bad}`), 400, "validation_failed");
    }
  });

  it("lists 100 features unless limit says otherwise (OpenMeter's LimitOffset default)", async () => {
    const meter = uid("m");
    await createMeter({ slug: meter, eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens" });
    for (let i = 0; i < 105; i++) expect((await api("POST", "/api/v1/features", { body: { key: `${meter}_${String(i).padStart(3, "0")}`, name: "n", meterSlug: meter } })).status).toBe(201);
    const list = async (q: string) => (await api("GET", `/api/v1/features?meterSlug=${meter}${q}`)).body.map((f: any) => f.key);
    expect(await list("")).toHaveLength(100);
    expect(await list("&offset=100")).toEqual([100, 101, 102, 103, 104].map((i) => `${meter}_${i}`));
    expect(await list("&limit=1000")).toHaveLength(105);
  });

  it("only lets SUM, COUNT, UNIQUE_COUNT and LATEST meters back a metered feature", async () => {
    const meter = uid("m");
    await createMeter({ slug: meter, eventType: "prompt", aggregation: "AVG", valueProperty: "$.tokens" });
    const r = await api("POST", "/api/v1/features", { body: { key: uid("f"), name: "x", meterSlug: meter } });
    expectProblem(r, 400, "validation_failed");
    expect(r.body.detail).toContain("AVG");
    expect(r.body.detail).toContain("SUM, COUNT, UNIQUE_COUNT, LATEST");
    expect(r.body.errors[0].field).toBe("meterSlug");
  });

  it("refuses an unknown meter, a filter on a key the meter does not group by, and unsupported fields", async () => {
    expectProblem(await api("POST", "/api/v1/features", { body: { key: uid("f"), name: "x", meterSlug: "no_such_meter" } }), 400, "validation_failed");
    const meter = uid("m");
    await createMeter({ slug: meter, eventType: "prompt", aggregation: "COUNT", groupBy: { model: "$.model" } });
    const r = await api("POST", "/api/v1/features", { body: { key: uid("f"), name: "x", meterSlug: meter, meterGroupByFilters: { region: "eu" } } });
    expectProblem(r, 400, "validation_failed");
    expect(r.body.detail).toContain("region");
    expectProblem(await api("POST", "/api/v1/features", { body: { key: uid("f"), name: "x", meterSlug: meter, advancedMeterGroupByFilters: { region: { $eq: "a" } } } }), 400, "validation_failed");
    expectProblem(await api("POST", "/api/v1/features", { body: { key: uid("f"), name: "x", meterSlug: meter, unitCost: { type: "manual", amount: "1" } } }), 400, "validation_failed");
    expectProblem(await api("POST", "/api/v1/features", { body: { key: "Not A Key", name: "x" } }), 400, "validation_failed");
  });

  it("needs admin to create and read to list", async () => {
    const reader = await createKey({ scopes: ["read"] });
    expectProblem(await api("POST", "/api/v1/features", { body: { key: uid("f"), name: "x" }, key: reader.key }), 403, "forbidden");
    expect((await api("GET", "/api/v1/features", { key: reader.key })).status).toBe(200);
    const ingester = await createKey({ scopes: ["ingest"] });
    expectProblem(await api("GET", "/api/v1/features", { key: ingester.key }), 403, "forbidden");
  });
});

describe("entitlements", () => {
  it("creates a metered entitlement in OpenMeter's shape", async () => {
    const anchor = truncMin(Date.now() - 3_600_000);
    const s = await setup({ entitlement: { issueAfterReset: 100, usagePeriod: { interval: "MONTH", anchor: isoAt(anchor + 1234) } } });
    const e = s.entitlement;
    expect(e).toMatchObject({ type: "metered", featureKey: s.feature, subjectKey: s.subject, isSoftLimit: false, issueAfterReset: 100, preserveOverageAtReset: false });
    expect(e.usagePeriod).toEqual({ interval: "MONTH", intervalISO: "P1M", anchor: isoAt(anchor) }); // truncated to the minute
    expect(e.measureUsageFrom).toBe(e.lastReset);
    expect(e.currentUsagePeriod.from).toBe(e.measureUsageFrom);
    expect(Date.parse(e.currentUsagePeriod.to)).toBe(new Date(anchor).setUTCMonth(new Date(anchor).getUTCMonth() + 1));

    const again = await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "metered", featureKey: s.feature, usagePeriod: { interval: "DAY" } } });
    expectProblem(again, 409, "conflict");

    const list = await api("GET", `/api/v1/subjects/${s.subject}/entitlements`);
    expect(list.body.map((x: any) => x.id)).toEqual([e.id]);
    expect((await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${e.id}`)).body.id).toBe(e.id);
  });

  it("serves an exact, read-your-writes value from the running counters", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    expect(await valueOk(s)).toEqual({ hasAccess: true, balance: 100, usage: 0, overage: 0, totalAvailableGrantAmount: 100 });
    await ingestOk([usage(s, { tokens: 10 }), usage(s, { tokens: 20 }), usage(s, { tokens: 5 })]);
    expect(await valueOk(s)).toEqual({ hasAccess: true, balance: 65, usage: 35, overage: 0, totalAvailableGrantAmount: 100 });
    for (let i = 0; i < 5; i++) {
      await ingestOk([usage(s, { tokens: 13 })]);
      expect((await valueOk(s)).usage).toBe(35 + 13 * (i + 1));
    }
    await ingestOk([usage(s, { tokens: 100 })]);
    expect(await valueOk(s)).toEqual({ hasAccess: false, balance: 0, usage: 200, overage: 100, totalAvailableGrantAmount: 100 });
    // By entitlement id too.
    const byId = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/value`);
    expect(byId.body.usage).toBe(200);
  });

  it("keeps hasAccess with a soft limit while overage grows", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10, isSoftLimit: true } });
    await ingestOk([usage(s, { tokens: 25 })]);
    expect(await valueOk(s)).toMatchObject({ hasAccess: true, balance: 0, usage: 25, overage: 15 });
  });

  it("measures from measureUsageFrom, and counts only the feature's filtered groups", async () => {
    const now = Date.now();
    const s = await setup({ groupBy: { model: "$.model" }, filters: { model: "big" }, entitlement: { issueAfterReset: 1000, measureUsageFrom: isoAt(now - 30 * MIN) } });
    await ingestOk([
      usage(s, { tokens: 7, model: "big" }, { time: isoAt(now - 40 * MIN) }), // before measurement
      usage(s, { tokens: 11, model: "big" }, { time: isoAt(now - 20 * MIN) }),
      usage(s, { tokens: 13, model: "small" }, { time: isoAt(now - 10 * MIN) }),
      usage(s, { tokens: 17, model: "big" }),
    ]);
    expect((await valueOk(s)).usage).toBe(28);
  });

  it("counts UNIQUE_COUNT as distinct values in the period and LATEST as the latest value", async () => {
    const u = await setup({ aggregation: "UNIQUE_COUNT", entitlement: { issueAfterReset: 3 } });
    await ingestOk([usage(u, { user: "a" }), usage(u, { user: "b" }), usage(u, { user: "a" })]);
    expect(await valueOk(u)).toMatchObject({ usage: 2, balance: 1, hasAccess: true });
    await ingestOk([usage(u, { user: "c" }), usage(u, { user: "d" })]);
    expect(await valueOk(u)).toMatchObject({ usage: 4, balance: 0, overage: 1, hasAccess: false });

    // Usage is measured from the entitlement's creation truncated to the minute: the events below are
    // up to 2 s old, so without an earlier start they missed it whenever the test began a minute.
    const l = await setup({ aggregation: "LATEST", entitlement: { issueAfterReset: 10, measureUsageFrom: isoAt(Date.now() - 3_600_000) } });
    const now = Date.now();
    await ingestOk([usage(l, { tokens: 4 }, { time: isoAt(now - 2000) }), usage(l, { tokens: 9 }, { time: isoAt(now - 1000) })]);
    expect(await valueOk(l)).toMatchObject({ usage: 9, balance: 1 });
    await ingestOk([usage(l, { tokens: 2 }, { time: isoAt(now - 1500) })]); // older: not the latest
    expect(await valueOk(l)).toMatchObject({ usage: 9, balance: 1 });
    await ingestOk([usage(l, { tokens: 3 })]);
    expect(await valueOk(l)).toMatchObject({ usage: 3, balance: 7 });
  });

  it("supports boolean and static entitlements", async () => {
    const subject = uid("s");
    const bool = uid("f");
    const stat = uid("f");
    await api("POST", "/api/v1/features", { body: { key: bool, name: "SSO" } });
    await api("POST", "/api/v1/features", { body: { key: stat, name: "Integrations" } });
    const b = await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body: { type: "boolean", featureKey: bool } });
    expect(b.status, b.text).toBe(201);
    expect(b.body.currentUsagePeriod).toBeUndefined();
    expectProblem(await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body: { type: "static", featureKey: stat, config: "[1]" } }), 400, "validation_failed");
    const st = await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body: { type: "static", featureKey: stat, config: '{"integrations":["github"]}', usagePeriod: { interval: "WEEK" } } });
    expect(st.status, st.text).toBe(201);
    expect(st.body.currentUsagePeriod).toBeDefined();
    expect((await api("GET", `/api/v1/subjects/${subject}/entitlements/${bool}/value`)).body).toEqual({ hasAccess: true });
    expect((await api("GET", `/api/v1/subjects/${subject}/entitlements/${stat}/value`)).body).toEqual({ hasAccess: true, config: '{"integrations":["github"]}' });
    const metered = await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body: { type: "metered", featureKey: bool, usagePeriod: { interval: "DAY" } } });
    expectProblem(metered, 400, "validation_failed");
    expect(metered.body.detail).toContain("no meter");
  });

  it("deletes: access ends, the entitlement stays listed with includeDeleted, and the feature can be entitled again", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const path = `/api/v1/subjects/${s.subject}/entitlements`;
    expect((await api("DELETE", `${path}/${s.entitlement.id}`)).status).toBe(204);
    expectProblem(await value(s), 404, "not_found");
    expect((await api("GET", path)).body).toEqual([]);
    const all = await api("GET", `${path}?includeDeleted=true`);
    expect(all.body[0].deletedAt).toBeDefined();
    expectProblem(await api("DELETE", `${path}/${s.entitlement.id}`), 404, "not_found");
    expect((await api("POST", path, { body: { type: "metered", featureKey: s.feature, usagePeriod: { interval: "DAY" } } })).status).toBe(201);
  });

  it("answers 404 for an unknown subject, entitlement or feature, and 400 for bad input", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    expectProblem(await api("GET", `/api/v1/subjects/${uid("nobody")}/entitlements/${s.feature}/value`), 404, "not_found");
    expectProblem(await api("GET", `/api/v1/subjects/${s.subject}/entitlements/nope/value`), 404, "not_found");
    expectProblem(await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "metered", featureKey: "no_such_feature", usagePeriod: { interval: "DAY" } } }), 404, "not_found");
    expectProblem(await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "metered", featureKey: s.feature } }), 400, "validation_failed");
    expectProblem(await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "metered", featureKey: s.feature, usagePeriod: { interval: "P2D" } } }), 400, "validation_failed");
    expectProblem(await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "metered", usagePeriod: { interval: "DAY" } } }), 400, "validation_failed");
    expectProblem(await value(s, `?time=${isoAt(Date.now() + 3_600_000)}`), 400, "validation_failed");
    expect((await api("GET", `/api/v1/subjects/${uid("nobody")}/entitlements`)).body).toEqual([]);
  });

  it("refuses isUnlimited: true on a metered entitlement (400 naming it) rather than metering a limit; false is accepted", async () => {
    const s = await setup({ entitlement: null });
    const body = { type: "metered", featureKey: s.feature, usagePeriod: { interval: "DAY" } };
    const unlimited = await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { ...body, isUnlimited: true } });
    expectProblem(unlimited, 400, "validation_failed");
    expect(unlimited.body.errors).toEqual([expect.objectContaining({ field: "isUnlimited" })]);
    expect((await api("GET", `/api/v1/subjects/${s.subject}/entitlements`)).body).toEqual([]);
    const limited = await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { ...body, isUnlimited: false } });
    expect(limited.status, limited.text).toBe(201);
    expect(limited.body.isUnlimited).toBe(false);
  });

  it("reads usagePeriod.interval in any case (the spec: one of day, week, month, or year), and the ISO forms", async () => {
    for (const [interval, expected] of [["month", "MONTH"], ["Week", "WEEK"], ["dAy", "DAY"], ["year", "YEAR"], ["P1M", "MONTH"]]) {
      const s = await setup({ entitlement: { usagePeriod: { interval } } });
      expect(s.entitlement.usagePeriod, interval).toMatchObject({ interval: expected });
    }
    const flag = uid("flag");
    expect((await api("POST", "/api/v1/features", { body: { key: flag, name: flag } })).status).toBe(201);
    const subject = uid("s");
    const bool = await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body: { type: "boolean", featureKey: flag, usagePeriod: { interval: "day" } } });
    expect(bool.status, bool.text).toBe(201);
    expect(bool.body.usagePeriod).toMatchObject({ interval: "DAY", intervalISO: "P1D" });
    for (const interval of ["mnth", "days", "P2D", ""]) {
      const res = await api("POST", `/api/v1/subjects/${uid("s")}/entitlements`, { body: { type: "boolean", featureKey: flag, usagePeriod: { interval } } });
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(["usagePeriod.interval"]);
    }
  });

  it("accepts a subject id (from GET /api/v1/subjects) where OpenMeter says subjectIdOrKey", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    await ingestOk([usage(s, { tokens: 2 })]);
    const subjects = await api("GET", "/api/v1/subjects?limit=1000");
    const id = subjects.body.find((x: any) => x.key === s.subject).id;
    const v = await api("GET", `/api/v1/subjects/${id}/entitlements/${s.feature}/value`);
    expect(v.body).toMatchObject({ usage: 2, balance: 3 });
    const list = await api("GET", `/api/v1/subjects/${id}/entitlements`);
    expect(list.body[0].subjectKey).toBe(s.subject);
  });

  it("rebuilds the counters when the meter is re-metered", async () => {
    const s = await setup({ groupBy: { model: "$.model" }, entitlement: { issueAfterReset: 100 } });
    await ingestOk([usage(s, { tokens: 4, model: "a", region: "eu" }), usage(s, { tokens: 6, model: "b", region: "us" })]);
    expect((await valueOk(s)).usage).toBe(10);
    const put = await api("PUT", `/api/v1/meters/${s.meter}`, { body: { groupBy: { model: "$.model", region: "$.region" } } });
    expect(put.status, put.text).toBe(200);
    expect((await valueOk(s)).usage).toBe(10);
    await ingestOk([usage(s, { tokens: 1, model: "a", region: "eu" })]);
    expect((await valueOk(s)).usage).toBe(11);
    expect(await total(s.meter, s.subject)).toBe(11);
  });

  it("is documented in /openapi.json", async () => {
    const doc = (await api("GET", "/openapi.json", { key: null })).body;
    for (const p of [
      "/api/v1/features",
      "/api/v1/features/{featureId}",
      "/api/v1/subjects/{subjectIdOrKey}/entitlements",
      "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}",
      "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value",
      "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/reset",
      "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants",
      "/api/v1/grants/{grantId}",
      "/api/v1/check",
    ]) {
      expect(doc.paths[p], p).toBeDefined();
    }
    expect(doc.components.schemas.EntitlementValue).toBeDefined();
  });
});
