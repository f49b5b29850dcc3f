import { describe, expect, it } from "vitest";
import { api, createKey, createMeter, event, expectProblem, ingest, ingestOk, uid } from "../helpers/api";
import { isoAt, setup, usage, value } from "../helpers/entitlements";

// A feature's advancedMeterGroupByFilters (OpenMeter's FilterString per group-by key) decide which
// of its meter's usage its entitlements count — on every path that counts: the running counters of
// each batch, the buckets a segment is built from, a check's contribution, distinct values.

const MODELS = { "gpt-4": 1, "gpt-4o": 2, "GPT-4o-mini": 4, claude: 8 } as const;
const ADVANCED = { model: { $like: "gpt-4%" } };

describe("a feature with advancedMeterGroupByFilters", () => {
  it("is stored and shown as sent", async () => {
    const s = await setup({ groupBy: { model: "$.model" }, advancedFilters: ADVANCED, entitlement: null });
    const f = await api("GET", `/api/v1/features/${s.feature}`);
    expect(f.body.advancedMeterGroupByFilters).toEqual(ADVANCED);
  });

  it("counts only the matching groups, batch by batch and when a segment is built from the buckets", async () => {
    const s = await setup({ groupBy: { model: "$.model", region: "$.region" }, filters: { region: "eu" }, advancedFilters: ADVANCED, entitlement: { issueAfterReset: 1000 } });
    const events = Object.entries(MODELS).flatMap(([model, tokens]) => [usage(s, { tokens, model, region: "eu" }), usage(s, { tokens: 100 * tokens, model, region: "us" })]);
    events.push(usage(s, { tokens: 64, region: "eu" }));
    await ingestOk(events);
    // gpt-4 and gpt-4o in eu: the like is case-sensitive, meterGroupByFilters keeps eu only, no model fails the like.
    expect((await value(s)).body).toMatchObject({ usage: 3, balance: 997 });
    // Another subject's entitlement created after its events: its segment is built from the buckets.
    const later = { ...s, subject: uid("later") };
    const from = Date.now() - 60_000;
    await ingestOk(events.map((e) => ({ ...e, id: `${e.id}-later`, subject: later.subject, time: isoAt(from + 1_000) })));
    const e = await api("POST", `/api/v1/subjects/${later.subject}/entitlements`, {
      body: { type: "metered", featureKey: s.feature, issueAfterReset: 1000, usagePeriod: { interval: "MONTH", anchor: isoAt(from - 86_400_000) }, measureUsageFrom: isoAt(from) },
    });
    expect(e.status, e.text).toBe(201);
    expect((await value(later)).body).toMatchObject({ usage: 3, balance: 997 });
  });

  it("decides a check on the event's contribution under the filters", async () => {
    const s = await setup({ groupBy: { model: "$.model" }, advancedFilters: { model: { $in: ["gpt-4"] } }, entitlement: { issueAfterReset: 10 } });
    const check = async (model: string, tokens: number) => (await api("POST", "/api/v1/check", { body: { subject: s.subject, feature: s.feature, event: usage(s, { tokens, model }) } })).body;
    expect(await check("claude", 50)).toMatchObject({ allowed: true, amount: 0, usage: 0 });
    expect(await check("gpt-4", 50)).toMatchObject({ allowed: false, amount: 50 });
    expect(await check("gpt-4", 4)).toMatchObject({ allowed: true, amount: 4, usage: 4 });
  });

  it("counts distinct values of the matching groups only (UNIQUE_COUNT)", async () => {
    const s = await setup({ aggregation: "UNIQUE_COUNT", groupBy: { model: "$.model" }, advancedFilters: { model: { $ne: "claude" } }, entitlement: { issueAfterReset: 100 } });
    await ingestOk([
      usage(s, { user: "a", model: "claude" }),
      usage(s, { user: "b", model: "claude" }),
      usage(s, { user: "a", model: "gpt-4" }),
      usage(s, { user: "c" }),
    ]);
    // a (gpt-4) and c (no model: $ne passes it); b only under claude.
    expect((await value(s)).body).toMatchObject({ usage: 2 });
  });
});

describe("refused advancedMeterGroupByFilters (400 naming the field)", () => {
  const cases: [name: string, body: (meter: string) => Record<string, unknown>, field: string][] = [
    ["an unknown operator", (meter) => ({ meterSlug: meter, advancedMeterGroupByFilters: { model: { $regex: "a" } } }), "advancedMeterGroupByFilters.model"],
    ["an unknown operator nested in $or", (meter) => ({ meterSlug: meter, advancedMeterGroupByFilters: { model: { $or: [{ $eq: "a" }, { $regex: "b" }] } } }), "advancedMeterGroupByFilters.model.$or.1"],
    ["two operators in one object", (meter) => ({ meterSlug: meter, advancedMeterGroupByFilters: { model: { $eq: "a", $ne: "b" } } }), "advancedMeterGroupByFilters.model"],
    ["a key the meter does not group by", (meter) => ({ meterSlug: meter, advancedMeterGroupByFilters: { user: { $eq: "a" } } }), "advancedMeterGroupByFilters.user"],
    ["a feature without a meter", () => ({ advancedMeterGroupByFilters: { model: { $eq: "a" } } }), "advancedMeterGroupByFilters"],
  ];
  for (const [name, body, field] of cases) {
    it(name, async () => {
      const meter = uid("m");
      await createMeter({ slug: meter, eventType: uid("t"), aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
      const key = uid("f");
      const res = await api("POST", "/api/v1/features", { body: { key, name: key, ...body(meter) } });
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors.map((e: { field: string }) => e.field), res.text).toContain(field);
    });
  }
});

describe("a namespace's definitions as a whole", () => {
  // Every customer object receives the namespace's definitions in one RPC argument (workerd: 32 MiB).
  // 40 features of 1 MB of filters each were all created (201); then every ingest of the namespace
  // answered 503 and every per-subject query 500, for good: archived features stay in the definitions.
  it("are capped: the feature that would grow them past the cap is refused (409), and ingest keeps working", async () => {
    const ns = `big-${uid("ns").toLowerCase().replace(/_/g, "-")}`;
    const admin = await createKey({ scopes: ["admin", "ingest", "read"], namespace: ns });
    const slug = uid("m");
    await createMeter({ slug, aggregation: "SUM", eventType: "x", valueProperty: "$.v", groupBy: { k: "$.k" } }, admin.key);
    const values = Array.from({ length: 1000 }, (_, i) => `${i}`.padEnd(1000, "x"));
    let refused: number | undefined;
    for (let i = 0; i < 40 && refused === undefined; i++) {
      const res = await api("POST", "/api/v1/features", { key: admin.key, body: { key: `f${i}`, name: `f${i}`, meterSlug: slug, advancedMeterGroupByFilters: { k: { $in: values } } } });
      if (res.status === 409) refused = i;
      else expect(res.status, res.text).toBe(201);
    }
    expect(refused, "no feature was refused").toBeGreaterThan(0);
    const listed = await api("GET", "/api/v1/features", { key: admin.key });
    expect(listed.body).toHaveLength(refused!);
    const r = await ingest([event({ type: "x", subject: "s1", data: { v: 2, k: "a" } })], { key: admin.key });
    expect(r.status, r.text).toBe(202);
    const q = await api("GET", `/api/v1/meters/${slug}/query?subject=s1`, { key: admin.key });
    expect(q.status, q.text).toBe(200);
    expect(q.body.data.map((d: { value: number }) => d.value)).toEqual([2]);
  }, 120_000);
});
