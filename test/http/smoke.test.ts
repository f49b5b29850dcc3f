import { describe, expect, it } from "vitest";
import { api, createMeter, event, ingest, queryMeter } from "../helpers/api";

describe("smoke", () => {
  it("creates a meter, ingests, queries", async () => {
    await createMeter({ slug: "tokens_total", eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
    const e1 = event({ data: { tokens: 5, model: "a" } });
    const r = await ingest([e1, event({ data: { tokens: 7, model: "b" } }), e1]);
    expect(r.status, r.text).toBe(202);
    expect(r.body).toEqual({ accepted: 2, duplicates: 1, rejected: [] });
    const q = await queryMeter("tokens_total", { subject: "customer-1" });
    expect(q.status, q.text).toBe(200);
    expect(q.body.data).toHaveLength(1);
    expect(q.body.data[0].value).toBe(12);
    const h = await api("GET", "/healthz", { key: null });
    expect(h.status).toBe(200);
  });
});
