import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { refreshSubject } from "../../src/customer/subject";
import type { Sql } from "../../src/customer/sql";
import type { Env } from "../../src/env";
import { api, customerStub, ingestOk, uid } from "../helpers/api";
import { setup, usage, value, type Setup } from "../helpers/entitlements";
import { eventually, notifyOn, received, SECRET } from "../helpers/notifications";

const LIMIT = { issueAfterReset: 100 };
const ULID = /^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$/;
const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

// The `required` lists of OpenMeter's schemas (reference/openmeter-v1-subset.yaml) for the payload's parts.
const REQUIRED = {
  Feature: ["createdAt", "updatedAt", "key", "name", "id"],
  Subject: ["createdAt", "updatedAt", "id", "key"],
  EntitlementMetered: ["type", "createdAt", "updatedAt", "activeFrom", "id", "subjectKey", "featureKey", "featureId", "lastReset", "currentUsagePeriod", "measureUsageFrom", "usagePeriod"],
  EntitlementValue: ["hasAccess"],
};

/** What a receiver validating against OpenMeter's payload schemas checks of `data`. */
function expectOpenMeterData(data: any, type: "entitlements.balance.threshold" | "entitlements.reset") {
  expect(Object.keys(data).sort()).toEqual(type === "entitlements.reset" ? ["entitlement", "feature", "subject", "value"] : ["entitlement", "feature", "subject", "threshold", "value"]);
  for (const [part, schema] of [["feature", "Feature"], ["subject", "Subject"], ["entitlement", "EntitlementMetered"], ["value", "EntitlementValue"]] as const) {
    for (const field of REQUIRED[schema]) expect(data[part], `${part}.${field}`).toHaveProperty(field);
  }
  expect(data.feature.id).toMatch(ULID);
  expect(data.subject.id).toMatch(ULID);
  for (const t of [data.feature.createdAt, data.feature.updatedAt, data.subject.createdAt, data.subject.updatedAt]) expect(t).toMatch(DATE_TIME);
}

async function asApiShows(s: Setup) {
  const feature = await api("GET", `/api/v1/features/${s.feature}`);
  const subject = await api("GET", `/api/v1/subjects/${s.subject}`);
  expect(subject.status, subject.text).toBe(200);
  return { feature: feature.body, subject: subject.body };
}

const bodies = (got: { body: string; headers: Record<string, string> }[]) => got.map((r) => new Webhook(SECRET).verify(r.body, r.headers) as any);

describe("webhook payloads carry OpenMeter's Feature and Subject", () => {
  it("a threshold payload shows the feature and the subject as their APIs do", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 5 }]);
    await ingestOk([usage(s, { tokens: 6 })]);
    const [payload] = bodies(await eventually(() => received(name), (r) => r.length === 1));
    expectOpenMeterData(payload.data, "entitlements.balance.threshold");
    const shown = await asApiShows(s);
    expect(payload.data.feature).toEqual(shown.feature);
    expect(payload.data.subject).toEqual(shown.subject);
    // The copy the events API lists is the payload that was sent.
    const listed = await eventually(() => api("GET", `/api/v1/notification/events?subject=${s.subject}`), (r) => r.body?.items?.length === 1);
    expect(listed.body.items[0].payload).toEqual(payload);
  });

  it("a reset payload too", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name, channel } = await notifyOn(s, [{ type: "usage_value", value: 1000 }]);
    const rule = await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.reset", name: "resets", channels: [channel.id], features: [s.feature] } });
    expect(rule.status, rule.text).toBe(201);
    await ingestOk([usage(s, { tokens: 1 })]);
    expect((await api("POST", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/reset`, { body: {} })).status).toBe(204);
    const [payload] = bodies(await eventually(() => received(name), (r) => r.length === 1));
    expect(payload.type).toBe("entitlements.reset");
    expectOpenMeterData(payload.data, "entitlements.reset");
    const shown = await asApiShows(s);
    expect(payload.data.feature).toEqual(shown.feature);
    expect(payload.data.subject).toEqual(shown.subject);
  });

  it("a notification written before the subject's D1 row was known is completed before it is sent", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 5 }]);
    // As for a subject whose first batch crosses: the object has not learnt its D1 row yet.
    await runInDurableObject(customerStub(s.subject), (_, st) => void st.storage.sql.exec("DELETE FROM meta WHERE key = 'subject_row'"));
    await evictDurableObject(customerStub(s.subject));
    await ingestOk([usage(s, { tokens: 6 })]);
    const [payload] = bodies(await eventually(() => received(name), (r) => r.length === 1));
    expect(payload.data.subject).toEqual((await asApiShows(s)).subject);
  });

  it("subject details upserted later show from the next notification on", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 5 }, { type: "usage_value", value: 10 }]);
    expect((await api("POST", "/api/v1/subjects", { body: [{ key: s.subject, displayName: "Acme Inc." }] })).status).toBe(200);
    await ingestOk([usage(s, { tokens: 6 })]);
    await eventually(() => received(name), (r) => r.length === 1);
    // The first delivery run re-read the row after sending.
    await eventually(() => api("GET", `/api/v1/notification/events?subject=${s.subject}`), (r) => r.body?.items?.[0]?.deliveryStatus?.[0]?.state === "SUCCESS");
    await ingestOk([usage(s, { tokens: 5 })]);
    const got = bodies(await eventually(() => received(name), (r) => r.length === 2));
    expect(got[1].data.subject).toEqual((await asApiShows(s)).subject);
    expect(got[1].data.subject.displayName).toBe("Acme Inc.");
  });

  it("re-reading an unchanged subject row writes nothing", async () => {
    const s = await setup({ entitlement: LIMIT });
    await ingestOk([usage(s, { tokens: 1 })]);
    const written = await runInDurableObject(customerStub(s.subject), async (obj) => {
      const o = obj as unknown as { sql: Sql; env: Env };
      const who = { namespace: "default", subject: s.subject };
      await refreshSubject(o.sql, o.env, who);
      const before = o.sql.snapshot().rowsWritten;
      await refreshSubject(o.sql, o.env, who);
      return o.sql.snapshot().rowsWritten - before;
    });
    expect(written).toBe(0);
  });

  it("an object from before features were in the config gets them on its next call", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 5 }]);
    // The object takes up the config with the rule (a read brings it up to date)...
    expect((await value(s)).status).toBe(200);
    // ...then its storage is made what the previous schema left: no features table, that version held.
    await runInDurableObject(customerStub(s.subject), (_, st) => {
      st.storage.sql.exec("DROP TABLE features");
      st.storage.sql.exec("UPDATE meta SET value = value - 1 WHERE key = 'schema_version'");
    });
    await evictDurableObject(customerStub(s.subject));
    await ingestOk([usage(s, { tokens: 6 })]);
    const [payload] = bodies(await eventually(() => received(name), (r) => r.length === 1));
    expect(payload.data.feature).toEqual((await asApiShows(s)).feature);
  });
});

describe("POST /api/v1/notification/rules/{id}/test", () => {
  it("sends a sample payload of the rule's type with OpenMeter's shape, naming the rule's feature", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name, rule } = await notifyOn(s, [{ type: "usage_percentage", value: 80 }]);
    const res = await api("POST", `/api/v1/notification/rules/${rule.id}/test`);
    expect(res.status, res.text).toBe(201);
    expect(res.body.annotations).toEqual({ "notification.rule.test": true });
    const [sent] = bodies(await eventually(() => received(name), (r) => r.length === 1));
    expect(sent).toEqual(res.body.payload);
    expect(sent).toMatchObject({ id: res.body.id, type: "entitlements.balance.threshold", timestamp: expect.stringMatching(DATE_TIME) });
    expectOpenMeterData(sent.data, "entitlements.balance.threshold");
    expect(sent.data.threshold).toEqual({ type: "usage_percentage", value: 80 });
    expect(sent.data.feature).toEqual((await asApiShows(s)).feature);
    expect(sent.data.entitlement).toMatchObject({ type: "metered", featureId: sent.data.feature.id, subjectKey: sent.data.subject.key });

    const reset = await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.reset", name: uid("r"), channels: rule.channels.map((c: { id: string }) => c.id) } });
    const resetTest = await api("POST", `/api/v1/notification/rules/${reset.body.id}/test`);
    expect(resetTest.status, resetTest.text).toBe(201);
    expectOpenMeterData(resetTest.body.payload.data, "entitlements.reset");
  });
});
