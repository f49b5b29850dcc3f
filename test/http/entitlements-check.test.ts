import { describe, expect, it } from "vitest";
import { api, createKey, expectProblem, ingestOk, listEvents, uid } from "../helpers/api";
import { check, isoAt, MIN, setup, usage, valueOk } from "../helpers/entitlements";

describe("POST /api/v1/check", () => {
  it("admits exactly L of N concurrent checks against a hard limit, and records exactly their events", async () => {
    const s = await setup({ aggregation: "COUNT", entitlement: { issueAfterReset: 50 } });
    const results = await Promise.all(Array.from({ length: 200 }, () => check({ subject: s.subject, feature: s.feature, event: usage(s, {}) })));
    for (const r of results) expect(r.status, r.text).toBe(200);
    const allowed = results.filter((r) => r.body.allowed);
    expect(allowed).toHaveLength(50);
    expect(results.filter((r) => !r.body.allowed).every((r) => r.body.hasAccess === false && r.body.balance === 0)).toBe(true);
    expect(await valueOk(s)).toEqual({ hasAccess: false, balance: 0, usage: 50, overage: 0, totalAvailableGrantAmount: 50 });
    expect(await listEvents(s.subject)).toHaveLength(50);
  });

  it("does not consume twice for a retried check with the same event, and answers allowed again", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    const ev = usage(s, { tokens: 4 });
    const first = await check({ subject: s.subject, feature: s.feature, event: ev });
    expect(first.body).toMatchObject({ allowed: true, amount: 4, usage: 4, balance: 6 });
    expect(first.body.duplicate).toBeUndefined();
    const retried = await check({ subject: s.subject, feature: s.feature, event: ev });
    expect(retried.body).toMatchObject({ allowed: true, duplicate: true, usage: 4, balance: 6 });
    // Concurrent retries of one event: still counted once.
    const ev2 = usage(s, { tokens: 5 });
    const burst = await Promise.all(Array.from({ length: 10 }, () => check({ subject: s.subject, feature: s.feature, event: ev2 })));
    expect(burst.every((r) => r.body.allowed)).toBe(true);
    expect(burst.filter((r) => !r.body.duplicate)).toHaveLength(1);
    expect(await valueOk(s)).toMatchObject({ usage: 9, balance: 1 });
    // An event already ingested the ordinary way is a duplicate too.
    const ev3 = usage(s, { tokens: 1 });
    await ingestOk([ev3]);
    expect((await check({ subject: s.subject, feature: s.feature, event: ev3 })).body).toMatchObject({ allowed: true, duplicate: true, usage: 10, balance: 0 });
  });

  it("refuses a check that does not fit, storing nothing; a smaller one still fits", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    const big = usage(s, { tokens: 11 });
    const r = await check({ subject: s.subject, feature: s.feature, event: big });
    expect(r.body).toMatchObject({ allowed: false, hasAccess: true, amount: 11, balance: 10, usage: 0, overage: 0 });
    expect(await listEvents(s.subject)).toHaveLength(0);
    expect((await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: 10 }) })).body).toMatchObject({ allowed: true, balance: 0, usage: 10 });
    // Retrying the refused event is decided afresh (a refusal stores nothing to deduplicate against).
    const again = await check({ subject: s.subject, feature: s.feature, event: big });
    expect(again.body.allowed).toBe(false);
    expect(again.body.duplicate).toBeUndefined();
  });

  it("always allows with a soft limit, and overage grows", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 2, isSoftLimit: true } });
    for (let i = 0; i < 5; i++) expect((await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: 1 }) })).body.allowed).toBe(true);
    expect(await valueOk(s)).toMatchObject({ hasAccess: true, usage: 5, overage: 3, balance: 0 });
  });

  it("decides on an explicit amount, or 1, and consumes nothing without an event", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 3 } });
    expect((await check({ subject: s.subject, feature: s.feature })).body).toMatchObject({ allowed: true, amount: 1, balance: 3 });
    expect((await check({ subject: s.subject, feature: s.feature, amount: 3 })).body).toMatchObject({ allowed: true, amount: 3 });
    expect((await check({ subject: s.subject, feature: s.feature, amount: 3.5 })).body).toMatchObject({ allowed: false, amount: 3.5 });
    // amount overrides the event's contribution for the decision; the event still adds its own value.
    expect((await check({ subject: s.subject, feature: s.feature, amount: 1, event: usage(s, { tokens: 2 }) })).body).toMatchObject({ allowed: true, amount: 1, usage: 2, balance: 1 });
  });

  it("uses each aggregation's contribution: UNIQUE_COUNT charges a value once per period, LATEST checks the new value", async () => {
    const u = await setup({ aggregation: "UNIQUE_COUNT", entitlement: { issueAfterReset: 2 } });
    const c = (user: string) => check({ subject: u.subject, feature: u.feature, event: usage(u, { user }) });
    expect((await c("a")).body).toMatchObject({ allowed: true, amount: 1, usage: 1 });
    expect((await c("a")).body).toMatchObject({ allowed: true, amount: 0, usage: 1 });
    expect((await c("b")).body).toMatchObject({ allowed: true, amount: 1, usage: 2, balance: 0 });
    expect((await c("c")).body).toMatchObject({ allowed: false, amount: 1 });
    expect((await c("a")).body).toMatchObject({ allowed: true, amount: 0 });

    const l = await setup({ aggregation: "LATEST", entitlement: { issueAfterReset: 10 } });
    const seats = (n: number) => check({ subject: l.subject, feature: l.feature, event: usage(l, { tokens: n }) });
    expect((await seats(8)).body).toMatchObject({ allowed: true, usage: 8, balance: 2 });
    expect((await seats(10)).body).toMatchObject({ allowed: true, usage: 10, balance: 0 });
    expect((await seats(11)).body).toMatchObject({ allowed: false, usage: 10 });
    expect((await seats(3)).body).toMatchObject({ allowed: true, usage: 3, balance: 7 });
  });

  it("charges 0 for an event the feature's group filter leaves out", async () => {
    const s = await setup({ groupBy: { model: "$.model" }, filters: { model: "big" }, entitlement: { issueAfterReset: 5 } });
    expect((await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: 9, model: "small" }) })).body).toMatchObject({ allowed: true, amount: 0, usage: 0 });
    expect((await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: 9, model: "big" }) })).body).toMatchObject({ allowed: false, amount: 9 });
  });

  it("records events for boolean and static entitlements and always allows", async () => {
    const s = await setup({ entitlement: null });
    const flag = uid("f");
    await api("POST", "/api/v1/features", { body: { key: flag, name: "flag" } });
    expect((await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "boolean", featureKey: flag } })).status).toBe(201);
    const r = await check({ subject: s.subject, feature: flag, event: usage(s, { tokens: 1 }) });
    expect(r.body).toMatchObject({ allowed: true, hasAccess: true });
    expect(await listEvents(s.subject)).toHaveLength(1);
  });

  it("answers clear errors", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const nobody = await check({ subject: uid("nobody"), feature: s.feature });
    expectProblem(nobody, 404, "not_found");
    expect(nobody.body.detail).toContain("unknown");
    const noFeature = await check({ subject: s.subject, feature: "no_such_feature" });
    expectProblem(noFeature, 404, "not_found");
    expect(noFeature.body.detail).toContain("no feature");
    const other = await setup({ entitlement: null });
    const noEnt = await check({ subject: s.subject, feature: other.feature });
    expectProblem(noEnt, 404, "not_found");
    expect(noEnt.body.detail).toContain("no entitlement");

    expectProblem(await check({ subject: s.subject, feature: s.feature, amount: 0 }), 400, "validation_failed");
    expectProblem(await check({ subject: s.subject, feature: s.feature, amount: -1 }), 400, "validation_failed");
    const mismatch = await check({ subject: s.subject, feature: s.feature, event: usage(s, {}, { subject: "someone_else" }) });
    expectProblem(mismatch, 400, "validation_failed");
    expect(mismatch.body.errors[0].field).toBe("event.subject");
    const wrongType = await check({ subject: s.subject, feature: s.feature, event: usage(s, {}, { type: "other" }) });
    expectProblem(wrongType, 400, "validation_failed");
    expect(wrongType.body.detail).toContain("not metered by feature");
    expectProblem(await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: "lots" }) }), 400, "validation_failed");
    expectProblem(await check({ subject: s.subject, feature: s.feature, event: usage(s, {}, { time: isoAt(Date.now() + 60 * MIN) }) }), 400, "validation_failed");
    expectProblem(await check({ subject: s.subject, feature: s.feature, event: { id: "x" } }), 400, "validation_failed");
    const badExtension = await check({ subject: s.subject, feature: s.feature, event: usage(s, {}, { myext: { a: 1 } }) });
    expectProblem(badExtension, 400, "validation_failed");
    expect(badExtension.body.errors[0].field).toBe("event.myext");
    expectProblem(await check({ subject: s.subject, feature: s.feature, event: usage(s, { tokens: 1, pad: "x".repeat(1_100_000) }) }), 413, "payload_too_large");
    expect(await listEvents(s.subject)).toHaveLength(0);
  });

  it("needs the ingest scope", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const reader = await createKey({ scopes: ["read"] });
    expectProblem(await check({ subject: s.subject, feature: s.feature }, reader.key), 403, "forbidden");
    const ingester = await createKey({ scopes: ["ingest"] });
    expect((await check({ subject: s.subject, feature: s.feature }, ingester.key)).body.allowed).toBe(true);
    expectProblem(await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/value`, { key: ingester.key }), 403, "forbidden");
    expectProblem(await check({ subject: s.subject, feature: s.feature }, null as unknown as string), 401, "unauthenticated");
  });
});
