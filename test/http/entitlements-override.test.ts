import { describe, expect, it } from "vitest";
import { api, createKey, expectProblem, ingest, uid } from "../helpers/api";
import { isoAt, setup, usage, value } from "../helpers/entitlements";

const override = (subject: string, idOrFeature: string, body: unknown, key?: string) =>
  api("PUT", `/api/v1/subjects/${subject}/entitlements/${idOrFeature}/override`, { body, key });

describe("entitlement override (OpenMeter's PUT …/entitlements/{entitlementIdOrFeatureKey}/override)", () => {
  it("replaces the live entitlement in one step: the new one answers value, the old one is deleted, both lists agree", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    expect((await ingest([usage(s, { tokens: 4 })])).status).toBe(202);

    // An upgrade that keeps the period's usage: 4 used of the new 100.
    const r = await override(s.subject, s.feature, {
      type: "metered",
      featureKey: s.feature,
      usagePeriod: { interval: "MONTH", anchor: isoAt(Date.now() - 86_400_000) },
      issueAfterReset: 100,
      measureUsageFrom: "CURRENT_PERIOD_START",
    });
    expect(r.status, r.text).toBe(201);
    expect(r.body).toMatchObject({ type: "metered", featureKey: s.feature, subjectKey: s.subject, issueAfterReset: 100 });
    expect(r.body.id).not.toBe(s.entitlement.id);
    expect((await value(s)).body).toMatchObject({ usage: 4, balance: 96, hasAccess: true });

    const path = `/api/v1/subjects/${s.subject}/entitlements`;
    expect((await api("GET", path)).body.map((e: any) => e.id)).toEqual([r.body.id]);
    const all = (await api("GET", `${path}?includeDeleted=true`)).body;
    expect(all.find((e: any) => e.id === s.entitlement.id).deletedAt).toBeDefined();
    const listed = await api("GET", `/api/v1/entitlements?subject=${s.subject}&pageSize=10`);
    expect(listed.body).toMatchObject({ totalCount: 1 });
    expect(listed.body.items.map((e: any) => e.id)).toEqual([r.body.id]);
    // The new issueAfterReset grant is listed namespace-wide under the new entitlement.
    const grants = await api("GET", `/api/v1/grants?subject=${s.subject}`);
    expect(grants.body.filter((g: any) => g.entitlementId === r.body.id).map((g: any) => g.amount)).toEqual([100]);

    // By id, too: the new one can be overridden in turn (a downgrade to a boolean flag is another feature: 400 below).
    // The interval in lower case, as the spec describes it ("one of: day, week, month, or year").
    const again = await override(s.subject, r.body.id, { type: "metered", featureKey: s.feature, usagePeriod: { interval: "day" }, issueAfterReset: 1 });
    expect(again.status, again.text).toBe(201);
    expect(again.body.usagePeriod).toMatchObject({ interval: "DAY", intervalISO: "P1D" });
    expect((await api("GET", path)).body.map((e: any) => e.id)).toEqual([again.body.id]);
  });

  it("refuses, and keeps the old entitlement live, when nothing is live to replace, the feature differs, or the object refuses the new one", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    const body = { type: "metered", featureKey: s.feature, usagePeriod: { interval: "DAY" } };
    expectProblem(await override(s.subject, "no_such_feature", body), 404, "not_found");
    expectProblem(await override(uid("nobody"), s.feature, body), 404, "not_found");

    const flag = uid("flag");
    expect((await api("POST", "/api/v1/features", { body: { key: flag, name: flag } })).status).toBe(201);
    expectProblem(await override(s.subject, s.feature, { type: "boolean", featureKey: flag }), 400, "validation_failed");
    // Valid at the edge, refused by the object after it deleted the old one: the delete is undone too.
    const tooOld = { ...body, measureUsageFrom: "2001-01-01T00:00:00Z" };
    expectProblem(await override(s.subject, s.feature, tooOld), 400, "validation_failed");
    expectProblem(await override(s.subject, s.feature, { type: "metered", featureKey: s.feature }), 400, "validation_failed");
    expectProblem(await override(s.subject, s.feature, { ...body, usagePeriod: { interval: "fortnight" } }), 400, "validation_failed");
    const unlimited = await override(s.subject, s.feature, { ...body, isUnlimited: true });
    expectProblem(unlimited, 400, "validation_failed");
    expect(unlimited.body.errors).toEqual([expect.objectContaining({ field: "isUnlimited" })]);

    const live = await api("GET", `/api/v1/subjects/${s.subject}/entitlements`);
    expect(live.body.map((e: any) => e.id)).toEqual([s.entitlement.id]);
    expect((await api("GET", `/api/v1/entitlements?subject=${s.subject}`)).body.map((e: any) => e.id)).toEqual([s.entitlement.id]);
    expect((await value(s)).body).toMatchObject({ balance: 10 });

    // A deleted entitlement cannot be overridden (OpenMeter: "the override will fail").
    expect((await api("DELETE", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}`)).status).toBe(204);
    expectProblem(await override(s.subject, s.entitlement.id, body), 404, "not_found");
    expect((await api("GET", `/api/v1/entitlements?subject=${s.subject}`)).body).toEqual([]);
  });

  it("turns a boolean entitlement into a static one of the same feature", async () => {
    const subject = uid("s");
    const flag = uid("flag");
    expect((await api("POST", "/api/v1/features", { body: { key: flag, name: flag } })).status).toBe(201);
    const b = await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body: { type: "boolean", featureKey: flag } });
    expect(b.status, b.text).toBe(201);
    const r = await override(subject, b.body.id, { type: "static", featureKey: flag, config: JSON.stringify({ seats: 5 }) });
    expect(r.status, r.text).toBe(201);
    const v = await api("GET", `/api/v1/subjects/${subject}/entitlements/${flag}/value`);
    expect(v.body).toEqual({ hasAccess: true, config: JSON.stringify({ seats: 5 }) });
  });

  it("needs an admin key and is documented", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    const reader = await createKey({ scopes: ["read", "ingest"] });
    expectProblem(await override(s.subject, s.feature, { type: "metered", featureKey: s.feature, usagePeriod: { interval: "DAY" } }, reader.key), 403, "forbidden");
    const doc = (await api("GET", "/openapi.json", { key: null })).body;
    expect(doc.paths["/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/override"].put).toBeDefined();
  });
});
