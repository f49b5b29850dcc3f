import { describe, expect, it } from "vitest";
import { api, createKey, createMeter, event, expectProblem, ingestOk, uid } from "../helpers/api";

// The operator routes behind `npm run bench` (src/http/debug.ts).
describe("GET /api/v1/debug/subjects/{subject}/storage", () => {
  const TYPE = "debug_call";

  it("reports size, retained events and the rows this instance read and wrote", async () => {
    await createMeter({ slug: uid("debug_sum"), eventType: TYPE, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
    const subject = uid("subj");
    const batch = Array.from({ length: 50 }, (_, i) => event({ type: TYPE, subject, data: { tokens: 1, model: `m${i % 2}` } }));
    await ingestOk(batch);
    const before = (await api("GET", `/api/v1/debug/subjects/${subject}/storage`)).body;
    expect(before).toMatchObject({ events: 50, buckets: 2, alarms: 0 });
    expect(before.databaseSize).toBeGreaterThan(0);
    expect(before.rowsWritten).toBeGreaterThanOrEqual(50);

    // Resending the batch writes nothing: duplicates cost reads only.
    expect(await ingestOk(batch)).toMatchObject({ accepted: 0, duplicates: 50 });
    const after = (await api("GET", `/api/v1/debug/subjects/${subject}/storage`)).body;
    expect(after.instanceStartedAt).toBe(before.instanceStartedAt);
    expect(after.rowsWritten).toBe(before.rowsWritten);
    expect(after.rowsRead).toBeGreaterThan(before.rowsRead);
    // Reading the stats does not count towards them.
    const again = (await api("GET", `/api/v1/debug/subjects/${subject}/storage`)).body;
    expect(again.rowsRead).toBe(after.rowsRead);
  });

  it("is admin only, and 404 for a subject that stored nothing", async () => {
    const subject = uid("subj");
    await ingestOk([event({ type: TYPE, subject })]);
    const { key } = await createKey({ scopes: ["read", "ingest"] });
    expectProblem(await api("GET", `/api/v1/debug/subjects/${subject}/storage`, { key }), 403, "forbidden");
    expectProblem(await api("GET", `/api/v1/debug/subjects/${subject}/storage`, { key: null }), 401, "unauthenticated");
    expectProblem(await api("GET", `/api/v1/debug/subjects/${uid("nobody")}/storage`), 404, "not_found");
  });

  it("does not reach another namespace's subject of the same name", async () => {
    const subject = uid("subj");
    await ingestOk([event({ type: TYPE, subject })]);
    const other = await createKey({ scopes: ["admin"], namespace: uid("ns") });
    expectProblem(await api("GET", `/api/v1/debug/subjects/${subject}/storage`, { key: other.key }), 404, "not_found");
  });
});

describe("POST /bench/parse-only", () => {
  it("does not exist unless BENCH_PARSE_ONLY is set", async () => {
    expectProblem(await api("POST", "/bench/parse-only", { body: [event()], key: null }), 404, "not_found");
  });
});
