import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, createKey, event, expectProblem, ingestOk, uid } from "../helpers/api";

/** Lists `count` subjects (keys `${prefix}-00000`…) straight into D1: thousands through the API would be slow. */
async function seedSubjects(namespace: string, prefix: string, count: number, from = 0, metadata: Record<string, unknown> | null = null) {
  const rows = Array.from({ length: count }, (_, i) => ({ key: `${prefix}-${String(from + i).padStart(5, "0")}`, id: `01J${String(from + i).padStart(23, "0")}`, metadata: metadata && JSON.stringify(metadata) }));
  for (let i = 0; i < rows.length; i += 500) {
    await env.DB.prepare("INSERT INTO subjects (namespace, key, id, created_at, metadata) SELECT ?, j.value ->> 'key', j.value ->> 'id', 0, j.value ->> 'metadata' FROM json_each(?) j")
      .bind(namespace, JSON.stringify(rows.slice(i, i + 500)))
      .run();
  }
}

const upsert = (body: unknown, key?: string) => api("POST", "/api/v1/subjects", { body, key });

describe("subjects (OpenMeter's upsert, get and delete)", () => {
  it("upserts: creates, then updates only the fields given; get by key or id", async () => {
    const key = uid("cust");
    const created = await upsert([{ key, displayName: "Acme", metadata: { hubspotId: "123", tier: { name: "pro" } }, stripeCustomerId: "cus_1" }]);
    expect(created.status, created.text).toBe(200);
    expect(created.body).toHaveLength(1);
    const s = created.body[0];
    expect(s).toMatchObject({ key, displayName: "Acme", metadata: { hubspotId: "123", tier: { name: "pro" } }, stripeCustomerId: "cus_1" });
    expect(s.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);

    const renamed = await upsert([{ key, displayName: "Acme Inc" }]);
    expect(renamed.body[0]).toMatchObject({ id: s.id, key, displayName: "Acme Inc", metadata: { hubspotId: "123", tier: { name: "pro" } }, stripeCustomerId: "cus_1", createdAt: s.createdAt });
    const cleared = await upsert([{ key, metadata: null }]);
    expect(cleared.body[0]).toMatchObject({ displayName: "Acme Inc", metadata: null });

    for (const ref of [key, s.id]) {
      const got = await api("GET", `/api/v1/subjects/${encodeURIComponent(ref)}`);
      expect(got.status, got.text).toBe(200);
      expect(got.body).toMatchObject({ id: s.id, key, displayName: "Acme Inc" });
    }
    const listed = await api("GET", `/api/v1/subjects?after=${encodeURIComponent(key.slice(0, -1))}&limit=1000`);
    expect(listed.body.find((x: { key: string }) => x.key === key)).toMatchObject({ displayName: "Acme Inc" });
  });

  it("a subject known from its events gets details by upsert, keeping its id", async () => {
    const subject = uid("fromevents");
    await ingestOk([event({ subject })]);
    const before = await api("GET", `/api/v1/subjects/${subject}`);
    expect(before.status, before.text).toBe(200);
    expect(before.body).toMatchObject({ key: subject, displayName: null, metadata: null });
    const after = await upsert([{ key: subject, displayName: "From events" }]);
    expect(after.body[0]).toMatchObject({ id: before.body.id, displayName: "From events", createdAt: before.body.createdAt });
  });

  it("deletes a subject's entry (404 after, and for an unknown one); its usage stays", async () => {
    const subject = uid("gone");
    await ingestOk([event({ subject })]);
    expect((await api("DELETE", `/api/v1/subjects/${subject}`)).status).toBe(204);
    expectProblem(await api("GET", `/api/v1/subjects/${subject}`), 404, "not_found");
    expectProblem(await api("DELETE", `/api/v1/subjects/${subject}`), 404, "not_found");
    const events = await api("GET", `/api/v1/events?subject=${subject}`);
    expect(events.body).toHaveLength(1);
    expect((await upsert([{ key: subject }])).status).toBe(200);
    expect((await api("GET", `/api/v1/subjects/${subject}`)).status).toBe(200);
  });

  it("refuses bad upserts whole (400) and needs the admin scope", async () => {
    const key = uid("bad");
    for (const body of [[], {}, [{ displayName: "no key" }], [{ key: "" }], [{ key: "nul\u0000" }], [{ key, metadata: [1] }], [{ key, displayName: 5 }], [{ key }, { key }], Array.from({ length: 101 }, (_, i) => ({ key: `${key}-${i}` }))]) {
      expectProblem(await upsert(body), 400, "validation_failed");
    }
    expectProblem(await upsert([{ key, metadata: { big: "x".repeat(20_000) } }]), 400, "validation_failed");
    expectProblem(await api("GET", `/api/v1/subjects/${key}`), 404, "not_found");
    const reader = await createKey({ scopes: ["read"] });
    expectProblem(await upsert([{ key }], reader.key), 403, "forbidden");
  });

  it("keeps and answers currentPeriodStart/End (OpenMeter's deprecated fields); refuses a value that is not an RFC 3339 date-time, naming it", async () => {
    const key = uid("period");
    const created = await upsert([{ key, currentPeriodStart: "2024-01-01T00:00:00Z", currentPeriodEnd: "2024-02-01T01:00:00.5+01:00" }]);
    expect(created.status, created.text).toBe(200);
    expect(created.body[0]).toMatchObject({ key, currentPeriodStart: "2024-01-01T00:00:00.000Z", currentPeriodEnd: "2024-02-01T00:00:00.500Z" });
    const renamed = await upsert([{ key, displayName: "kept" }]);
    expect(renamed.body[0]).toMatchObject({ displayName: "kept", currentPeriodStart: "2024-01-01T00:00:00.000Z", currentPeriodEnd: "2024-02-01T00:00:00.500Z" });
    expect((await api("GET", `/api/v1/subjects/${key}`)).body).toMatchObject({ currentPeriodStart: "2024-01-01T00:00:00.000Z" });
    const plain = await upsert([{ key: uid("noperiod") }]);
    expect(plain.body[0]).not.toHaveProperty("currentPeriodStart");

    for (const bad of ["yesterday", "2024-01-01", "2024-01-01T00:00:00", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00.0000000001Z", 5, null]) {
      for (const field of ["currentPeriodStart", "currentPeriodEnd"]) {
        const res = await upsert([{ key: uid("ok") }, { key: uid("bad"), [field]: bad }]);
        expectProblem(res, 400, "validation_failed");
        expect(res.body.errors.map((e: { field: string }) => e.field), `${field}: ${bad}`).toEqual([`1.${field}`]);
      }
    }
  });

  it("refuses a currentPeriodStart after currentPeriodEnd, one given alone against the stored other, and stores no item of that request", async () => {
    const key = uid("reversed");
    const other = uid("bystander");
    const expectField = (res: Awaited<ReturnType<typeof upsert>>, field: string) => {
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual([field]);
    };
    expectField(await upsert([{ key: other, displayName: "not stored" }, { key, currentPeriodStart: "2024-02-01T00:00:00Z", currentPeriodEnd: "2024-01-01T00:00:00Z" }]), "1.currentPeriodStart");
    expectProblem(await api("GET", `/api/v1/subjects/${other}`), 404, "not_found");

    // An empty period (start = end) is not reversed.
    expect((await upsert([{ key, currentPeriodStart: "2024-01-01T00:00:00Z", currentPeriodEnd: "2024-01-01T00:00:00Z" }])).status).toBe(200);
    expect((await upsert([{ key, currentPeriodEnd: "2024-02-01T00:00:00Z" }])).status).toBe(200);
    expectField(await upsert([{ key: other }, { key, currentPeriodStart: "2024-03-01T00:00:00Z" }]), "1.currentPeriodStart");
    expectField(await upsert([{ key, currentPeriodEnd: "2023-12-31T23:59:59.999Z" }]), "0.currentPeriodEnd");
    expectProblem(await api("GET", `/api/v1/subjects/${other}`), 404, "not_found");
    expect((await api("GET", `/api/v1/subjects/${key}`)).body).toMatchObject({ currentPeriodStart: "2024-01-01T00:00:00.000Z", currentPeriodEnd: "2024-02-01T00:00:00.000Z" });

    // Moving both together past the stored end is a consistent period.
    const moved = await upsert([{ key, currentPeriodStart: "2024-03-01T00:00:00Z", currentPeriodEnd: "2024-04-01T00:00:00Z" }]);
    expect(moved.body[0]).toMatchObject({ currentPeriodStart: "2024-03-01T00:00:00.000Z", currentPeriodEnd: "2024-04-01T00:00:00.000Z" });
  });

  it("lists every subject without parameters (OpenMeter), past one D1 page; limit and after still page", async () => {
    const admin = await createKey({ scopes: ["admin"], namespace: uid("ns_every") });
    await seedSubjects(admin.namespace, "s", 2_345);
    const all = await api("GET", "/api/v1/subjects", { key: admin.key });
    expect(all.status, all.text).toBe(200);
    expect(all.body).toHaveLength(2_345);
    expect(all.body.map((x: { key: string }) => x.key)).toEqual(Array.from({ length: 2_345 }, (_, i) => `s-${String(i).padStart(5, "0")}`));
    const first = await api("GET", "/api/v1/subjects?limit=1000", { key: admin.key });
    expect(first.body).toHaveLength(1000);
    const next = await api("GET", `/api/v1/subjects?after=${first.body[999].key}`, { key: admin.key });
    expect(next.body).toHaveLength(1000);
    expect(next.body[0].key).toBe("s-01000");
    expectProblem(await api("GET", "/api/v1/subjects?limit=1001", { key: admin.key }), 400, "validation_failed");
  });

  it("answers 400 rather than a partial list past 10,000 subjects (exactly 10,000 are listed)", async () => {
    const admin = await createKey({ scopes: ["admin"], namespace: uid("ns_cap") });
    await seedSubjects(admin.namespace, "c", 10_000);
    const full = await api("GET", "/api/v1/subjects", { key: admin.key });
    expect(full.status, full.text).toBe(200);
    expect(full.body).toHaveLength(10_000);
    await seedSubjects(admin.namespace, "c", 1, 10_000);
    const over = await api("GET", "/api/v1/subjects", { key: admin.key });
    expectProblem(over, 400, "bad_request");
    expect(over.body.detail).toMatch(/limit.*after/);
    const paged = await api("GET", "/api/v1/subjects?after=c-09999&limit=10", { key: admin.key });
    expect(paged.body.map((x: { key: string }) => x.key)).toEqual(["c-10000"]);
  });

  it("answers 400 rather than holding more than 16 MB of subjects (large metadata)", async () => {
    const admin = await createKey({ scopes: ["admin"], namespace: uid("ns_big") });
    await seedSubjects(admin.namespace, "m", 1_100, 0, { blob: "x".repeat(15_000) });
    expectProblem(await api("GET", "/api/v1/subjects", { key: admin.key }), 400, "bad_request");
    const page = await api("GET", "/api/v1/subjects?limit=100", { key: admin.key });
    expect(page.body).toHaveLength(100);
  });
});
