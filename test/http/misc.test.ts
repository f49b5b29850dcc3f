import { describe, expect, it } from "vitest";
import { api, createMeter, event, expectProblem, ingestOk, listEvents, uid } from "../helpers/api";

describe("routes", () => {
  it("GET /healthz answers without a key", async () => {
    const res = await api("GET", "/healthz", { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
  });

  it("404 problem+json for an unknown route", async () => {
    const res = await api("GET", "/api/v1/nothing-here");
    expectProblem(res, 404, "not_found");
    expect(res.body).toMatchObject({ status: 404, title: "Not Found", instance: "http://edgemeter.test/api/v1/nothing-here" });
    expectProblem(await api("GET", "/nowhere", { key: null }), 404, "not_found");
  });

  it("a problem's instance is an absolute URI without the query (OpenMeter's spec: format uri)", async () => {
    const res = await api("GET", "/api/v1/meters/nope?x=1");
    expectProblem(res, 404, "not_found");
    expect(res.body.instance).toBe("http://edgemeter.test/api/v1/meters/nope");
  });

  it("405 problem+json with Allow for a path that exists under other methods", async () => {
    const res = await api("DELETE", "/api/v1/events");
    expectProblem(res, 405, "method_not_allowed");
    expect(res.headers.get("allow")).toBe("GET, HEAD, POST");
    expect(res.body).toMatchObject({ status: 405, title: "Method Not Allowed", instance: "http://edgemeter.test/api/v1/events" });
    // A parameter matches one segment, and the methods of every route on the path are named.
    const meter = await api("PATCH", "/api/v1/meters/any-slug", { body: {} });
    expectProblem(meter, 405, "method_not_allowed");
    expect(meter.headers.get("allow")).toBe("DELETE, GET, HEAD, PUT");
    expectProblem(await api("PATCH", "/api/v1/meters/any-slug/extra"), 404, "not_found");
    expectProblem(await api("POST", "/healthz", { key: null }), 405, "method_not_allowed");
    expectProblem(await api("DELETE", "/api/v1/%65vents"), 405, "method_not_allowed");
    // The bench's ceiling route is off here: it stays a 404 whatever the method.
    expectProblem(await api("GET", "/bench/parse-only", { key: null }), 404, "not_found");
    // Authentication still comes first on /api: no route list for an anonymous caller.
    expectProblem(await api("DELETE", "/api/v1/events", { key: null }), 401, "unauthenticated");
  });

  it("/openapi.json is an OpenAPI 3.1.0 document listing the OpenMeter paths", async () => {
    const res = await api("GET", "/openapi.json", { key: null });
    expect(res.status).toBe(200);
    expect(() => JSON.parse(res.text)).not.toThrow();
    const doc = res.body;
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/v1/events", "/api/v1/meters", "/api/v1/meters/{meterIdOrSlug}/query"]));
    expect(Object.keys(doc.paths["/api/v1/events"])).toEqual(expect.arrayContaining(["get", "post"]));
    expect(Object.keys(doc.paths["/api/v1/meters/{meterIdOrSlug}/query"])).toEqual(expect.arrayContaining(["get", "post"]));
    expect(doc.components.schemas).toHaveProperty("Problem");
  });

  it("every pattern in /openapi.json is a plain regex a value can match (no JavaScript flags written into it)", async () => {
    const doc = (await api("GET", "/openapi.json", { key: null })).body;
    const patterns: string[] = [];
    const walk = (o: unknown): void => {
      if (Array.isArray(o)) o.forEach(walk);
      else if (o && typeof o === "object") for (const [k, v] of Object.entries(o)) k === "pattern" && typeof v === "string" ? patterns.push(v) : walk(v);
    };
    walk(doc);
    expect(patterns.length).toBeGreaterThan(0);
    for (const p of patterns) {
      expect(() => new RegExp(p, "u"), p).not.toThrow();
      // A regex literal's flags copied into the pattern ("…$/i") leave a pattern no value satisfies.
      expect(p, p).not.toMatch(/\$\/[dgimsuvy]+$/);
    }
    const contentType = doc.components.schemas.Event.properties.datacontenttype;
    if (contentType.pattern) expect(new RegExp(contentType.pattern, "u").test("application/json")).toBe(true);
  });
});

describe("subjects and events", () => {
  const TYPE = "misc_call";

  it("GET /api/v1/subjects lists a subject once its first event is stored", async () => {
    const subject = uid("subj");
    const keys = async () => (await api("GET", "/api/v1/subjects")).body.map((s: { key: string }) => s.key);
    expect(await keys()).not.toContain(subject);
    await ingestOk([event({ type: TYPE, subject })]);
    await ingestOk([event({ type: TYPE, subject })]);
    const res = await api("GET", "/api/v1/subjects");
    expect(res.status, res.text).toBe(200);
    const listed = res.body.filter((s: { key: string }) => s.key === subject);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ key: subject, displayName: null, metadata: null });
    expect(typeof listed[0].id).toBe("string");
    expect(Number.isNaN(Date.parse(listed[0].createdAt))).toBe(false);
  });

  it("GET /api/v1/events?subject=… answers OpenMeter IngestedEvent objects, newest first", async () => {
    const subject = uid("events");
    const older = event({ type: TYPE, subject, source: "svc-a", time: new Date(Date.now() - 3_600_000).toISOString(), data: { tokens: 1, model: "m" } });
    const newer = event({ type: TYPE, subject, source: "svc-b", time: new Date(Date.now() - 60_000).toISOString(), data: { tokens: 2 } });
    await ingestOk([older, newer]);
    const list = await listEvents(subject);
    expect(list).toHaveLength(2);
    expect(list.map((e) => e.event.id)).toEqual([newer.id, older.id]);
    expect(list[1]).toEqual({
      event: { specversion: "1.0", id: older.id, source: "svc-a", type: TYPE, subject, time: older.time, data: { tokens: 1, model: "m" } },
      ingestedAt: expect.any(String),
      storedAt: expect.any(String),
    });
    expect(Date.parse(list[1].ingestedAt)).toBeGreaterThanOrEqual(Date.parse(older.time as string));

    expect(await listEvents(uid("nobody"))).toEqual([]);
    expectProblem(await api("GET", "/api/v1/events?subject="), 400, "validation_failed");
  });
});

describe("meter definitions", () => {
  const valid = (over: Record<string, unknown> = {}) => ({ slug: uid("m"), eventType: "misc_call", aggregation: "SUM", valueProperty: "$.tokens", ...over });
  const create = (body: Record<string, unknown>) => api("POST", "/api/v1/meters", { body });
  const fields = (res: { body: any }) => (res.body.errors ?? []).map((e: { field: string }) => e.field);

  it("creates a meter and reads it back by slug and by id", async () => {
    const def = valid({ groupBy: { model: "$.model" }, description: "d" });
    const res = await createMeter(def);
    expect(res.body).toMatchObject({ slug: def.slug, name: def.slug, aggregation: "SUM", eventType: "misc_call", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
    // OpenMeter's Meter.metadata is an object, not nullable: left out when there is none.
    expect("metadata" in res.body).toBe(false);
    for (const ref of [def.slug, res.body.id]) {
      const got = await api("GET", `/api/v1/meters/${ref}`);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(res.body);
    }
  });

  it.each([
    ["a slug with capitals and a dash", { slug: "Bad-Slug" }, "slug"],
    ["COUNT with a valueProperty", { aggregation: "COUNT", valueProperty: "$.tokens" }, "valueProperty"],
    ["SUM without a valueProperty", { valueProperty: undefined }, "valueProperty"],
    ["a recursive-descent JSONPath", { valueProperty: "$..x" }, "valueProperty"],
    ["a wildcard JSONPath", { valueProperty: "$.a[*]" }, "valueProperty"],
    ["a wildcard JSONPath in groupBy", { groupBy: { model: "$.a[*]" } }, "groupBy.model"],
    ["an unknown aggregation", { aggregation: "MEDIAN" }, "aggregation"],
  ])("400 for %s", async (_label, over, field) => {
    const def = valid(over);
    const res = await create(def);
    expectProblem(res, 400, "validation_failed");
    expect(fields(res)).toContain(field);
    expect((await api("GET", `/api/v1/meters/${def.slug}`)).status).not.toBe(200);
  });

  it("409 for a duplicate slug", async () => {
    const def = valid();
    await createMeter(def);
    expectProblem(await create({ ...def, aggregation: "MAX" }), 409, "conflict");
  });

  it("PUT may change name and groupBy, but not aggregation, eventType or valueProperty", async () => {
    const def = valid();
    await createMeter(def);
    const path = `/api/v1/meters/${def.slug}`;
    const bad = await api("PUT", path, { body: { aggregation: "MAX" } });
    expectProblem(bad, 400, "validation_failed");
    expect(fields(bad)).toContain("aggregation");
    expectProblem(await api("PUT", path, { body: { eventType: "other" } }), 400, "validation_failed");
    expectProblem(await api("PUT", path, { body: { valueProperty: "$.other" } }), 400, "validation_failed");
    expectProblem(await api("PUT", path, { body: { groupBy: { x: "$..x" } } }), 400, "validation_failed");
    expect((await api("GET", path)).body.aggregation).toBe("SUM");

    // Sending the unchanged immutable fields back is fine (clients that PUT the whole meter).
    const ok = await api("PUT", path, { body: { aggregation: "SUM", name: "Renamed", groupBy: { model: "$.model" } } });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ name: "Renamed", aggregation: "SUM", groupBy: { model: "$.model" } });
    expectProblem(await api("PUT", "/api/v1/meters/no_such_meter", { body: { name: "x" } }), 404, "not_found");
  });

  it("DELETE removes a meter; its slug can then be reused", async () => {
    const def = valid();
    await createMeter(def);
    expect((await api("DELETE", `/api/v1/meters/${def.slug}`)).status).toBe(204);
    expectProblem(await api("GET", `/api/v1/meters/${def.slug}`), 404, "not_found");
    await createMeter({ ...def, aggregation: "MAX" });
    expect((await api("GET", `/api/v1/meters/${def.slug}`)).body.aggregation).toBe("MAX");
  });
});
