import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { api, createKey, createMeter, customerStub, event, ingestOk, uid } from "../helpers/api";

// Review of the day rows (usage_snapshot_days): limits and edges the first tests did not reach.

describe("namespace-wide queries at D1's 100 bound parameters", () => {
  let key: string;
  let namespace: string;
  const slug = uid("wide");
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
  const subject = uid("wide-s");

  beforeAll(async () => {
    ({ key, namespace } = await createKey({ scopes: ["admin", "read", "ingest"], namespace: uid("ns-wide") }));
    await createMeter({ slug, eventType: "wide", aggregation: "SUM", valueProperty: "$.v", groupBy: Object.fromEntries(keys.map((k) => [k, `$.${k}`])) }, key);
    await ingestOk([event({ subject, type: "wide", data: { v: 3, ...Object.fromEntries(keys.map((k) => [k, "x"])) } })], { key });
    const r = await customerStub(subject, namespace).flushSnapshots({ namespace, subject });
    expect(r?.applied).toBe(true);
  });

  it("answers a query grouped by all 20 keys of a meter (40 parameters of group-by before day rows)", async () => {
    const res = await api("POST", `/api/v1/meters/${slug}/query`, { key, body: { groupBy: keys } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.map((r: { value: number }) => r.value)).toEqual([3]);
  });

  it("answers a query with 50 filter operators and group-by keys (94 parameters before day rows)", async () => {
    const filter = { $or: Array.from({ length: 49 }, (_, i) => ({ $eq: i === 0 ? "x" : `n${i}` })) };
    const res = await api("POST", `/api/v1/meters/${slug}/query`, { key, body: { groupBy: keys, advancedMeterGroupByFilters: { k0: filter } } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.map((r: { value: number }) => r.value)).toEqual([3]);
  });
});
