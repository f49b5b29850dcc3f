import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, createKey, createMeter, event, expectProblem, ingestOk, queryMeter, rows, total, uid } from "../helpers/api";
import { setup as setupEntitlement } from "../helpers/entitlements";

/** OpenMeter's listMeters parameters, and meter date-times the API cannot read. */

describe("GET /api/v1/meters", () => {
  // A namespace of its own, so the file's other meters do not show up in the lists.
  const setup = async () => {
    const { key } = await createKey({ scopes: ["admin"], namespace: uid("ns_meters") });
    const make = async (slug: string, name: string, aggregation: string) =>
      (await createMeter({ slug, name, eventType: "list_call", aggregation, ...(aggregation === "COUNT" ? {} : { valueProperty: "$.tokens" }) }, key)).body;
    // Created in this order, so createdAt (and the ULID) grow c, a, b; names and aggregations sort otherwise.
    const c = await make("c_meter", "Alpha", "SUM");
    await new Promise((r) => setTimeout(r, 5));
    const a = await make("a_meter", "Charlie", "MAX");
    await new Promise((r) => setTimeout(r, 5));
    const b = await make("b_meter", "Bravo", "COUNT");
    const list = async (qs = "") => {
      const res = await api("GET", `/api/v1/meters${qs}`, { key });
      expect(res.status, res.text).toBe(200);
      return res.body as { slug: string; deletedAt?: string }[];
    };
    return { key, a, b, c, list, slugs: async (qs = "") => (await list(qs)).map((m) => m.slug) };
  };

  it("orders by key (the slug) ascending by default; order and orderBy change it", async () => {
    const { slugs } = await setup();
    expect(await slugs()).toEqual(["a_meter", "b_meter", "c_meter"]);
    expect(await slugs("?order=DESC")).toEqual(["c_meter", "b_meter", "a_meter"]);
    expect(await slugs("?orderBy=name")).toEqual(["c_meter", "b_meter", "a_meter"]);
    expect(await slugs("?orderBy=aggregation")).toEqual(["b_meter", "a_meter", "c_meter"]);
    expect(await slugs("?orderBy=createdAt")).toEqual(["c_meter", "a_meter", "b_meter"]);
    expect(await slugs("?orderBy=createdAt&order=DESC")).toEqual(["b_meter", "a_meter", "c_meter"]);
  });

  it("orderBy=updatedAt follows the last change", async () => {
    const { key, slugs } = await setup();
    await new Promise((r) => setTimeout(r, 5));
    expect((await api("PUT", "/api/v1/meters/c_meter", { key, body: { name: "Renamed" } })).status).toBe(200);
    expect(await slugs("?orderBy=updatedAt")).toEqual(["a_meter", "b_meter", "c_meter"]);
    expect(await slugs("?orderBy=updatedAt&order=DESC")).toEqual(["c_meter", "b_meter", "a_meter"]);
  });

  it("pages with page and pageSize; the answer stays a plain array", async () => {
    const { list, slugs } = await setup();
    expect(Array.isArray(await list("?pageSize=2"))).toBe(true);
    expect(await slugs("?pageSize=2")).toEqual(["a_meter", "b_meter"]);
    expect(await slugs("?page=2&pageSize=2")).toEqual(["c_meter"]);
    expect(await slugs("?page=3&pageSize=2")).toEqual([]);
    expect(await slugs("?page=2&pageSize=1&order=DESC")).toEqual(["b_meter"]);
    // page alone: pages of the default size, 100.
    expect(await slugs("?page=1")).toEqual(["a_meter", "b_meter", "c_meter"]);
    expect(await slugs("?page=2")).toEqual([]);
    expect(await slugs("?pageSize=1000")).toEqual(["a_meter", "b_meter", "c_meter"]);
  });

  it("includeDeleted=true adds deleted meters, with deletedAt; otherwise they are left out", async () => {
    const { key, list, slugs } = await setup();
    const before = Date.now();
    expect((await api("DELETE", "/api/v1/meters/b_meter", { key })).status).toBe(204);
    // Its slug reused: both meters are listed, told apart by deletedAt.
    await createMeter({ slug: "b_meter", eventType: "list_call", aggregation: "COUNT" }, key);
    const live = await list();
    expect(live.map((m) => m.slug)).toEqual(["a_meter", "b_meter", "c_meter"]);
    expect(live.every((m) => !("deletedAt" in m))).toBe(true);
    const all = await list("?includeDeleted=true");
    expect(all.map((m) => m.slug)).toEqual(["a_meter", "b_meter", "b_meter", "c_meter"]);
    const deleted = all.filter((m) => m.deletedAt !== undefined);
    expect(deleted).toHaveLength(1);
    expect(Date.parse(deleted[0]!.deletedAt!)).toBeGreaterThanOrEqual(before - 1000);
    expect(await slugs("?includeDeleted=false")).toEqual(["a_meter", "b_meter", "c_meter"]);
    expect(await slugs("?includeDeleted=true&page=2&pageSize=2")).toEqual(["b_meter", "c_meter"]);
  });

  it("400 naming the parameter for values outside the spec", async () => {
    const { key } = await setup();
    for (const [qs, field] of [
      ["page=0", "page"],
      ["pageSize=0", "pageSize"],
      ["pageSize=1001", "pageSize"],
      ["order=UP", "order"],
      ["orderBy=slug", "orderBy"],
      ["includeDeleted=yes", "includeDeleted"],
    ]) {
      const res = await api("GET", `/api/v1/meters?${qs}`, { key });
      expectProblem(res, 400, "validation_failed");
      expect(res.text).toContain(field);
    }
  });
});

describe("meter eventFrom", () => {
  it("more than 9 fractional digits is refused (400 naming eventFrom), not read as no cutoff", async () => {
    const slug = uid("from");
    const res = await api("POST", "/api/v1/meters", { body: { slug, eventType: "from_call", aggregation: "COUNT", eventFrom: "2099-01-01T00:00:00.0000000001Z" } });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(["eventFrom"]);
    expectProblem(await api("GET", `/api/v1/meters/${slug}`), 404, "not_found");
  });

  it("9 fractional digits are read (to the millisecond) and the cutoff applies", async () => {
    const slug = uid("from");
    const created = await createMeter({ slug, eventType: "from_call", aggregation: "COUNT", eventFrom: "2099-01-01T00:00:00.123456789Z" });
    expect(created.body.eventFrom).toBe("2099-01-01T00:00:00.123Z");
    const subject = uid("from_subject");
    await ingestOk([event({ type: "from_call", subject })]);
    expect(await total(slug, subject)).toBe(0);
  });
});

describe("PUT /api/v1/meters/{idOrSlug} (OpenMeter's MeterUpdate replaces)", () => {
  it("a field left out is reset: name to the slug, description and metadata to none, groupBy to {} (re-metered as any groupBy change)", async () => {
    const slug = uid("put");
    const eventType = uid("put_call");
    await createMeter({ slug, name: "Tokens", description: "AI tokens", metadata: { team: "ai" }, eventType, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
    const subject = uid("put_subject");
    await ingestOk([event({ type: eventType, subject, data: { tokens: 3, model: "a" } }), event({ type: eventType, subject, data: { tokens: 4, model: "b" } })]);
    expect((await rows(slug, { subject, groupBy: "model" })).map((r) => r.groupBy.model).sort()).toEqual(["a", "b"]);

    const put = await api("PUT", `/api/v1/meters/${slug}`, { body: { description: "only this" } });
    expect(put.status, put.text).toBe(200);
    expect(put.body).toMatchObject({ slug, name: slug, description: "only this", groupBy: {} });
    expect(put.body.metadata ?? null).toBeNull();
    const got = (await api("GET", `/api/v1/meters/${slug}`)).body;
    expect(got).toEqual(put.body);
    // The group-by key is gone, as after an explicit groupBy change; the usage is re-metered and kept.
    expectProblem(await queryMeter(slug, { subject, groupBy: "model" }), 400, "validation_failed");
    expect(await total(slug, subject)).toBe(7);

    const back = await api("PUT", `/api/v1/meters/${slug}`, { body: { name: "Tokens", groupBy: { model: "$.model" } } });
    expect(back.body).toMatchObject({ name: "Tokens", groupBy: { model: "$.model" } });
    expect(back.body.description).toBeUndefined();
    expect((await rows(slug, { subject, groupBy: "model" })).map((r) => [r.groupBy.model, r.value]).sort()).toEqual([["a", 3], ["b", 4]]);
    expect((await api("PUT", `/api/v1/meters/${slug}`, { body: {} })).body).toMatchObject({ name: slug, groupBy: {} });
  });

  it("refuses (409) to drop a group by key that a live feature filters on, and allows it once the feature is archived", async () => {
    for (const filters of [{ meterGroupByFilters: { model: "a" } }, { advancedMeterGroupByFilters: { model: { $in: ["a"] } } }]) {
      const slug = uid("kept");
      await createMeter({ slug, eventType: uid("kept_t"), aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model", region: "$.region" } });
      const key = uid("kf");
      expect((await api("POST", "/api/v1/features", { body: { key, name: key, meterSlug: slug, ...filters } })).status).toBe(201);
      const refused = await api("PUT", `/api/v1/meters/${slug}`, { body: { name: "n" } });
      expectProblem(refused, 409, "conflict");
      expect(refused.body.detail).toContain(key);
      expect((await api("GET", `/api/v1/meters/${slug}`)).body.groupBy).toEqual({ model: "$.model", region: "$.region" });
      // Dropping a key no feature filters on is fine.
      expect((await api("PUT", `/api/v1/meters/${slug}`, { body: { name: "n", groupBy: { model: "$.model" } } })).status).toBe(200);
      expect((await api("DELETE", `/api/v1/features/${key}`)).status).toBe(204);
      expect((await api("PUT", `/api/v1/meters/${slug}`, { body: { name: "n" } })).status).toBe(200);
    }
  });

  it("refuses (409) to drop a key that an archived feature's live entitlement filters on, until the entitlement is deleted", async () => {
    // Archiving leaves existing entitlements counting with their copied filters: the update used to pass
    // (200) and the entitlement's usage fell from 5 to 0, its balance back to the whole grant.
    const s = await setupEntitlement({ groupBy: { model: "$.model" }, filters: { model: "a" }, entitlement: { issueAfterReset: 100 } });
    await ingestOk([event({ type: s.eventType, subject: s.subject, data: { tokens: 5, model: "a" } }), event({ type: s.eventType, subject: s.subject, data: { tokens: 7, model: "b" } })]);
    const value = async () => (await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/value`)).body;
    expect(await value()).toMatchObject({ usage: 5, balance: 95 });
    expect((await api("DELETE", `/api/v1/features/${s.feature}`)).status).toBe(204);
    const refused = await api("PUT", `/api/v1/meters/${s.meter}`, { body: { groupBy: {} } });
    expectProblem(refused, 409, "conflict");
    expect(refused.body.detail).toContain(s.entitlement.id);
    expect(await value()).toMatchObject({ usage: 5, balance: 95 });
    expect((await api("DELETE", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}`)).status).toBe(204);
    expect((await api("PUT", `/api/v1/meters/${s.meter}`, { body: { groupBy: {} } })).status).toBe(200);
  });

  it("refuses (409) to drop a filtered group by key named like an Object.prototype member too", async () => {
    const slug = uid("kept_proto");
    await createMeter({ slug, eventType: uid("kept_p"), aggregation: "SUM", valueProperty: "$.tokens", groupBy: { constructor: "$.c" } });
    const key = uid("kfp");
    expect((await api("POST", "/api/v1/features", { body: { key, name: key, meterSlug: slug, meterGroupByFilters: { constructor: "a" } } })).status).toBe(201);
    expectProblem(await api("PUT", `/api/v1/meters/${slug}`, { body: { name: "n" } }), 409, "conflict");
    expect((await api("GET", `/api/v1/meters/${slug}`)).body.groupBy).toEqual({ constructor: "$.c" });
  });
});

describe("DELETE /api/v1/meters/{meterIdOrSlug} while in use (OpenMeter: 409)", () => {
  it("refuses while a live feature uses the meter, then while a live entitlement of the archived feature does", async () => {
    const s = await setupEntitlement();
    const del = () => api("DELETE", `/api/v1/meters/${s.meter}`);
    const byFeature = await del();
    expectProblem(byFeature, 409, "conflict");
    expect(byFeature.body.detail).toContain(s.feature);

    expect((await api("DELETE", `/api/v1/features/${s.feature}`)).status).toBe(204);
    const byEntitlement = await del();
    expectProblem(byEntitlement, 409, "conflict");
    expect(byEntitlement.body.detail).toContain(s.entitlement.id);
    expect((await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/value`)).status).toBe(200);

    expect((await api("DELETE", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}`)).status).toBe(204);
    expect((await del()).status).toBe(204);
  });

  it("skips and repairs an index row whose object holds no such entitlement", async () => {
    const s = await setupEntitlement({ entitlement: null });
    const featureId = (await api("GET", `/api/v1/features/${s.feature}`)).body.id;
    expect((await api("DELETE", `/api/v1/features/${s.feature}`)).status).toBe(204);
    // What a create that failed after indexing leaves behind.
    const ghost = "01JGHOST0000000000000000AA";
    await env.DB.prepare("INSERT INTO entitlement_index (id, namespace, subject, feature_id, feature_key, type, created_at) VALUES (?, 'default', ?, ?, ?, 'metered', 0)")
      .bind(ghost, s.subject, featureId, s.feature)
      .run();
    expect((await api("DELETE", `/api/v1/meters/${s.meter}`)).status).toBe(204);
    const row = await env.DB.prepare("SELECT deleted_at FROM entitlement_index WHERE id = ?").bind(ghost).first<{ deleted_at: number | null }>();
    expect(row?.deleted_at).not.toBeNull();
  });
});
