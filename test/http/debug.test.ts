import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/http/app";
import { ADMIN, api, createKey, createMeter, event, expectProblem, ingestOk, uid } from "../helpers/api";
import { setup } from "../helpers/entitlements";

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

describe("the bench routes", () => {
  it("do not exist unless BENCH_PARSE_ONLY is set, whatever the credentials", async () => {
    for (const key of [null, ADMIN]) {
      expectProblem(await api("POST", "/bench/parse-only", { body: [event()], key }), 404, "not_found");
      expectProblem(await api("GET", "/bench/authenticated", { key }), 404, "not_found");
      expectProblem(await api("POST", "/bench/authenticated", { body: { a: 1 }, key }), 404, "not_found");
      expectProblem(await api("GET", "/bench/check-rpc?subject=a&feature=b", { key }), 404, "not_found");
      expectProblem(await api("GET", "/bench/repeat?what=zod&n=1", { key }), 404, "not_found");
    }
  });

  // The app itself, with the flag on in its environment (the test runtime's is off).
  const bench = { ...env, BENCH_PARSE_ONLY: "true" };
  const call = async (method: string, path: string, opts: { key?: string; body?: string } = {}) => {
    const headers: Record<string, string> = opts.key ? { authorization: `Bearer ${opts.key}` } : {};
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const res = await app.request(`http://edgemeter.test${path}`, { method, headers, body: opts.body }, bench);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it("with it on, the probes authenticate and gate the body as every /api route does", async () => {
    expect(await call("POST", "/bench/parse-only", { body: "[1,2,3]" })).toEqual({ status: 202, body: { events: 3 } });
    expect((await call("GET", "/bench/authenticated")).status).toBe(401);
    expect((await call("GET", "/bench/authenticated", { key: "em_wrong" })).status).toBe(401);
    expect(await call("GET", "/bench/authenticated", { key: ADMIN })).toEqual({ status: 200, body: { ok: true } });
    expect(await call("POST", "/bench/authenticated", { key: ADMIN, body: '{"subject":"a"}' })).toEqual({ status: 200, body: { ok: true } });
    const malformed = await call("POST", "/bench/authenticated", { key: ADMIN, body: '{"subject":' });
    expect(malformed).toMatchObject({ status: 400, body: { code: "malformed_json" } });
  });

  it("with it on, check-rpc answers what a check deciding 1 unit answers, without recording", async () => {
    const { subject, feature } = await setup({ aggregation: "COUNT", entitlement: { issueAfterReset: 5 } });
    const probe = await call("GET", `/bench/check-rpc?subject=${subject}&feature=${feature}`);
    const check = await api("POST", "/api/v1/check", { body: { subject, feature, amount: 1 } });
    expect(probe.status).toBe(200);
    expect(probe.body).toMatchObject({ ok: true, value: { allowed: true, balance: 5, usage: 0 } });
    expect(probe.body.value).toEqual(check.body);
    expect((await call("GET", "/bench/check-rpc?subject=x")).status).toBe(400);
  });

  it("with it on, repeat runs one step of a check n times, and names its choices otherwise", async () => {
    for (const what of ["resolved", "json", "inspect", "zod", "digest"]) expect(await call("GET", `/bench/repeat?what=${what}&n=3`)).toEqual({ status: 200, body: { n: 3 } });
    expect(await call("GET", "/bench/repeat?what=nothing&n=3")).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    expect((await call("GET", "/bench/repeat?what=zod&n=0")).status).toBe(400);
  });
});
