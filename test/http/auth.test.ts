import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, createKey, createMeter, event, expectProblem, ingest, ingestOk, rows, sha256Hex, total, uid } from "../helpers/api";

describe("authentication", () => {
  it("401 problem+json without a key", async () => {
    const res = await api("GET", "/api/v1/meters", { key: null });
    expectProblem(res, 401, "unauthenticated");
    expect(res.body).toMatchObject({ status: 401, type: "urn:edgemeter:problem:unauthenticated", instance: "http://edgemeter.test/api/v1/meters" });
  });

  it("401 with an unknown key, and with a malformed Authorization header", async () => {
    expectProblem(await api("GET", "/api/v1/meters", { key: "em_not-a-real-key" }), 401, "unauthenticated");
    expectProblem(await api("GET", "/api/v1/meters", { key: null, headers: { authorization: "Basic dXNlcjpwYXNz" } }), 401, "unauthenticated");
    expectProblem(await ingest([event()], { key: "em_not-a-real-key" }), 401, "unauthenticated");
  });
});

// The route and the scope decide before the body is read (found by test/e2e/fuzz.e2e.test.ts): the JSON
// gate used to run for every /api request first, so these answered 400, 413 or 415.
describe("what is answered before the body is read", () => {
  const bodies: [label: string, raw: string, type: string][] = [
    ["malformed JSON", '{"slug":', "application/json"],
    ["a text/plain body", "plain words", "text/plain"],
    ["a body over 1 MiB", `{"pad":"${"p".repeat(1_100_000)}"}`, "application/json"],
  ];

  it("403 for a key without the scope, whatever the body holds", async () => {
    const { key } = await createKey({ scopes: ["read"] });
    for (const [, raw, type] of bodies) {
      expectProblem(await api("POST", "/api/v1/meters", { key, raw, type }), 403, "forbidden");
      expectProblem(await api("POST", "/api/v1/keys", { key, raw, type }), 403, "forbidden");
      expectProblem(await api("POST", "/api/v1/check", { key, raw, type }), 403, "forbidden");
    }
  });

  it("404 for an unknown path and 405 for a method the path does not answer, whatever the body holds", async () => {
    for (const [, raw, type] of bodies) {
      expectProblem(await api("POST", "/api/v1/no-such-route", { raw, type }), 404, "not_found");
      expectProblem(await api("PUT", "/api/v1/meters", { raw, type }), 405, "method_not_allowed");
      expectProblem(await api("PATCH", "/api/v1/keys/some-key-id", { raw, type }), 405, "method_not_allowed");
      expectProblem(await api("PUT", "/api/v1/check", { raw, type }), 405, "method_not_allowed");
    }
  });
});

describe("API keys", () => {
  it("returns the secret once; the list never shows it; D1 stores only its SHA-256", async () => {
    const created = await createKey({ name: "ci", scopes: ["ingest"] });
    expect(created.key).toMatch(/^em_/);
    expect(created.prefix).toBe(created.key.slice(0, created.prefix.length));
    expect(created).toMatchObject({ name: "ci", namespace: "default", scopes: ["ingest"] });

    const list = await api("GET", "/api/v1/keys");
    expect(list.status, list.text).toBe(200);
    const listed = list.body.find((k: { id: string }) => k.id === created.id);
    expect(listed).toMatchObject({ id: created.id, name: "ci", prefix: created.prefix });
    expect(listed).not.toHaveProperty("key");
    expect(list.text).not.toContain(created.key);

    const stored = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(created.id).first<Record<string, unknown>>();
    expect(stored).not.toBeNull();
    expect(stored!.key_hash).toBe(await sha256Hex(created.key));
    expect(JSON.stringify(stored)).not.toContain(created.key);
    const all = await env.DB.prepare("SELECT * FROM api_keys").all();
    expect(JSON.stringify(all.results)).not.toContain(created.key);
  });

  it("400 for an unknown scope or an extra field", async () => {
    expectProblem(await api("POST", "/api/v1/keys", { body: { name: "x", scopes: ["superuser"] } }), 400, "validation_failed");
    expectProblem(await api("POST", "/api/v1/keys", { body: { name: "x", scopes: ["read"], key: "chosen" } }), 400, "validation_failed");
  });

  it("an ingest-only key can ingest but not read meters or query", async () => {
    const slug = uid("scope_ingest");
    await createMeter({ slug, eventType: slug, aggregation: "COUNT" });
    const { key } = await createKey({ scopes: ["ingest"] });
    const subject = uid("s");
    expect((await ingest([event({ type: slug, subject })], { key })).status).toBe(202);
    expectProblem(await api("GET", "/api/v1/meters", { key }), 403, "forbidden");
    expectProblem(await api("GET", `/api/v1/meters/${slug}`, { key }), 403, "forbidden");
    expectProblem(await api("GET", `/api/v1/meters/${slug}/query?subject=${subject}`, { key }), 403, "forbidden");
    expectProblem(await api("POST", `/api/v1/meters/${slug}/query`, { key, body: { subject: [subject] } }), 403, "forbidden");
    expectProblem(await api("GET", "/api/v1/keys", { key }), 403, "forbidden");
    expectProblem(await api("GET", `/api/v1/events?subject=${subject}`, { key }), 403, "forbidden");
    expectProblem(await api("GET", "/api/v1/subjects", { key }), 403, "forbidden");
  });

  it("a read key can query but not ingest or define meters", async () => {
    const slug = uid("scope_read");
    await createMeter({ slug, eventType: slug, aggregation: "COUNT" });
    const subject = uid("s");
    await ingestOk([event({ type: slug, subject })]);
    const { key } = await createKey({ scopes: ["read"] });
    expect((await api("GET", "/api/v1/meters", { key })).status).toBe(200);
    expect(await total(slug, subject, key)).toBe(1);
    expectProblem(await ingest([event({ type: slug, subject })], { key }), 403, "forbidden");
    expectProblem(await api("POST", "/api/v1/meters", { key, body: { slug: uid("nope"), eventType: "x", aggregation: "COUNT" } }), 403, "forbidden");
    expectProblem(await api("POST", "/api/v1/keys", { key, body: { name: "x", scopes: ["admin"] } }), 403, "forbidden");
    // The forbidden ingest stored nothing.
    expect(await total(slug, subject)).toBe(1);
  });

  it("a revoked key gets 401 afterwards", async () => {
    const { id, key } = await createKey({ scopes: ["read"] });
    expect((await api("GET", "/api/v1/meters", { key })).status).toBe(200);
    expect((await api("DELETE", `/api/v1/keys/${id}`)).status).toBe(204);
    expectProblem(await api("GET", "/api/v1/meters", { key }), 401, "unauthenticated");
    expect((await api("GET", "/api/v1/keys")).body.map((k: { id: string }) => k.id)).not.toContain(id);
    expectProblem(await api("DELETE", `/api/v1/keys/${id}`), 404, "not_found");
  });

  it("the ADMIN_API_KEY can revoke a key it created for another namespace", async () => {
    const { id, key } = await createKey({ scopes: ["read"], namespace: "revocable" });
    expect((await api("GET", "/api/v1/meters", { key })).status).toBe(200);
    const res = await api("DELETE", `/api/v1/keys/${id}`);
    expect(res.status, res.text).toBe(204);
    expectProblem(await api("GET", "/api/v1/meters", { key }), 401, "unauthenticated");
  });
});

describe("namespaces", () => {
  it("a key of another namespace cannot see default's meters, and ingests into its own namespace", async () => {
    const slug = uid("tenant");
    const subject = uid("shared_subject");
    await createMeter({ slug, eventType: slug, aggregation: "SUM", valueProperty: "$.n" });
    const other = await createKey({ scopes: ["admin"], namespace: "other" });
    expect(other.namespace).toBe("other");

    expectProblem(await api("GET", `/api/v1/meters/${slug}`, { key: other.key }), 404, "not_found");
    expectProblem(await api("GET", `/api/v1/meters/${slug}/query?subject=${subject}`, { key: other.key }), 404, "not_found");
    expect((await api("GET", "/api/v1/meters", { key: other.key })).body.map((m: { slug: string }) => m.slug)).not.toContain(slug);

    // The same slug is free in "other"; the same subject name is a different customer there.
    await createMeter({ slug, eventType: slug, aggregation: "SUM", valueProperty: "$.n" }, other.key);
    await ingestOk([event({ type: slug, subject, data: { n: 5 } })]);
    await ingestOk([event({ type: slug, subject, data: { n: 7 } }), event({ type: slug, subject, data: { n: 11 } })], { key: other.key });

    expect(await total(slug, subject, other.key)).toBe(18);
    expect(await total(slug, subject)).toBe(5);
    const otherRows = await rows(slug, { subject }, other.key);
    expect(otherRows).toHaveLength(1);
    expect(otherRows[0]!.value).toBe(18);

    // Events and subjects are per namespace too.
    const listed = await api("GET", `/api/v1/events?subject=${subject}`, { key: other.key });
    expect(listed.body.map((e: { event: { data: { n: number } } }) => e.event.data.n).sort()).toEqual([11, 7]);
    const subjects = await api("GET", "/api/v1/subjects", { key: other.key });
    expect(subjects.body.map((s: { key: string }) => s.key)).toEqual([subject]);
  });

  it("only the ADMIN_API_KEY may create keys for another namespace", async () => {
    const nsAdmin = await createKey({ scopes: ["admin"], namespace: "tenant_b" });
    expectProblem(await api("POST", "/api/v1/keys", { key: nsAdmin.key, body: { name: "x", scopes: ["read"], namespace: "default" } }), 403, "forbidden");
    const own = await createKey({ scopes: ["read"] }, nsAdmin.key);
    expect(own.namespace).toBe("tenant_b");
    // A namespace admin lists only its own namespace's keys.
    const ids = (await api("GET", "/api/v1/keys", { key: nsAdmin.key })).body.map((k: { id: string }) => k.id);
    expect(ids.sort()).toEqual([nsAdmin.id, own.id].sort());
  });
});
