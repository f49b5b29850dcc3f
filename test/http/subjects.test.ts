import { describe, expect, it } from "vitest";
import { api, createKey, event, expectProblem, ingestOk, uid } from "../helpers/api";

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
});
