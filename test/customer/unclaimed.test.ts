import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { DAY, api, createMeter, customerStub, event, ingest, ingestOk, iso, uid } from "../helpers/api";

// A customer's Durable Object keeps no storage until something is stored for it (do.ts claiming):
// writes that store nothing — a batch whose every event is refused, an entitlement refused — leave
// it as reads do, and the object still counts the next batch that does store.

const slug = "unclaimed_tokens";
const feature = "unclaimed_feature";
beforeAll(async () => {
  expect((await createMeter({ slug, eventType: "unclaimed", aggregation: "SUM", valueProperty: "$.tokens" })).status).toBe(201);
  expect((await api("POST", "/api/v1/features", { body: { key: feature, name: feature, meterSlug: slug } })).status).toBe(201);
});

const tables = (subject: string) =>
  runInDurableObject(customerStub(subject), (_, state) => Number(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM sqlite_master").one().n));

const sum = async (subject: string) =>
  ((await api("GET", `/api/v1/meters/${slug}/query?subject=${encodeURIComponent(subject)}`)).body.data as { value: number }[]).reduce((n, r) => n + r.value, 0);

describe("writes that store nothing", () => {
  it("a batch whose every event is refused leaves no storage; the next batch is counted", async () => {
    const s = uid("refused");
    const old = iso(Date.now() - 400 * DAY);
    const refused = await ingest([
      event({ subject: s, type: "unclaimed", time: old, data: { tokens: 5 } }),
      event({ subject: s, type: "unclaimed", time: iso(Date.now() + DAY), data: { tokens: 7 } }),
    ]);
    expect(refused.status, refused.text).toBeLessThan(500);
    expect(refused.text).toContain("older than the retention window");
    expect(await tables(s)).toBe(0);
    // Reads still take the subject for unknown.
    const value = await api("GET", `/api/v1/subjects/${encodeURIComponent(s)}/entitlements`);
    expect(value.status, value.text).toBeLessThan(500);
    expect(await tables(s)).toBe(0);
    expect((await ingestOk([event({ subject: s, type: "unclaimed", data: { tokens: 3 } })])).accepted).toBe(1);
    expect(await tables(s)).toBeGreaterThan(0);
    expect(await sum(s)).toBe(3);
    // With the definitions it counted by: the refused batch's copy of them was rolled back.
    const stored = await runInDurableObject(customerStub(s), (_, state) => state.storage.sql.exec("SELECT slug FROM meters").toArray().map((r) => r.slug));
    expect(stored).toContain(slug);
  });

  it("an entitlement the object refuses leaves no storage; the next one is created", async () => {
    const s = uid("refused-ent");
    const path = `/api/v1/subjects/${encodeURIComponent(s)}/entitlements`;
    const body = { type: "metered", featureKey: feature, usagePeriod: { interval: "MONTH" } };
    const refused = await api("POST", path, { body: { ...body, measureUsageFrom: iso(Date.now() + DAY) } });
    expect(refused.status, refused.text).toBe(400);
    expect(await tables(s)).toBe(0);
    const created = await api("POST", path, { body });
    expect(created.status, created.text).toBe(201);
    expect((await ingestOk([event({ subject: s, type: "unclaimed", data: { tokens: 4 } })])).accepted).toBe(1);
    const v = await api("GET", `${path}/${feature}/value`);
    expect(v.status, v.text).toBe(200);
    expect(v.body.usage).toBe(4);
  });
});
