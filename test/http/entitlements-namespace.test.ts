import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Sql } from "../../src/customer/sql";
import { api, createKey, customerStub, expectProblem, uid } from "../helpers/api";
import { setup } from "../helpers/entitlements";

describe("namespace-wide entitlements (OpenMeter's GET /api/v1/entitlements and /{id})", () => {
  it("lists live entitlements across subjects, filters by subject, feature and type, pages, and gets one by id alone", async () => {
    const a = await setup({ entitlement: { issueAfterReset: 10 } });
    const b = await setup({ entitlement: { issueAfterReset: 20 } });
    const boolKey = uid("flag");
    expect((await api("POST", "/api/v1/features", { body: { key: boolKey, name: "flag" } })).status).toBe(201);
    const flag = await api("POST", `/api/v1/subjects/${a.subject}/entitlements`, { body: { type: "boolean", featureKey: boolKey } });
    expect(flag.status, flag.text).toBe(201);

    const mine = await api("GET", `/api/v1/entitlements?subject=${a.subject}&subject=${b.subject}`);
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body.map((e: any) => e.id)).toEqual([a.entitlement.id, b.entitlement.id, flag.body.id]);
    expect(mine.body[1]).toMatchObject({ id: b.entitlement.id, subjectKey: b.subject, featureKey: b.feature, type: "metered" });

    const byFeature = await api("GET", `/api/v1/entitlements?feature=${boolKey}`);
    expect(byFeature.body.map((e: any) => e.id)).toEqual([flag.body.id]);
    const byType = await api("GET", `/api/v1/entitlements?subject=${a.subject}&entitlementType=boolean`);
    expect(byType.body.map((e: any) => e.id)).toEqual([flag.body.id]);

    const second = await api("GET", `/api/v1/entitlements?subject=${a.subject}&subject=${b.subject}&pageSize=2&page=2`);
    expect(second.body).toMatchObject({ totalCount: 3, page: 2, pageSize: 2 });
    expect(second.body.items.map((e: any) => e.id)).toEqual([flag.body.id]);
    const newest = await api("GET", `/api/v1/entitlements?subject=${a.subject}&subject=${b.subject}&order=DESC&limit=1`);
    expect(newest.body.map((e: any) => e.id)).toEqual([flag.body.id]);

    const got = await api("GET", `/api/v1/entitlements/${b.entitlement.id}`);
    expect(got.status, got.text).toBe(200);
    expect(got.body).toEqual((await api("GET", `/api/v1/subjects/${b.subject}/entitlements/${b.entitlement.id}`)).body);
    expectProblem(await api("GET", `/api/v1/entitlements/${uid("none")}`), 404, "not_found");

    // Deleted (here by feature key): out of the list.
    expect((await api("DELETE", `/api/v1/subjects/${a.subject}/entitlements/${boolKey}`)).status).toBe(204);
    const after = await api("GET", `/api/v1/entitlements?subject=${a.subject}&subject=${b.subject}&pageSize=10`);
    expect(after.body.totalCount).toBe(2);
    expect(after.body.items.map((e: any) => e.id)).toEqual([a.entitlement.id, b.entitlement.id]);
  });

  it("a refused create leaves nothing listed; another namespace sees nothing; bad filters are 400", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const again = await api("POST", `/api/v1/subjects/${s.subject}/entitlements`, { body: { type: "metered", featureKey: s.feature, usagePeriod: { interval: "MONTH" } } });
    expectProblem(again, 409, "conflict");
    const listed = await api("GET", `/api/v1/entitlements?subject=${s.subject}&pageSize=10`);
    expect(listed.body).toMatchObject({ totalCount: 1 });
    const other = await createKey({ scopes: ["read"], namespace: uid("ns").toLowerCase() });
    expect((await api("GET", `/api/v1/entitlements?subject=${s.subject}`, { key: other.key })).body).toEqual([]);
    expectProblem(await api("GET", `/api/v1/entitlements/${s.entitlement.id}`, { key: other.key }), 404, "not_found");
    for (const bad of ["entitlementType=gold", "page=0", "pageSize=1001", "order=UP", "limit=0", "limit=1001"]) {
      expectProblem(await api("GET", `/api/v1/entitlements?${bad}`), 400, "validation_failed");
    }
    // updatedAt moves inside the Durable Objects (resets, rollovers, re-metering): refused, not answered by creation.
    const byUpdate = await api("GET", "/api/v1/entitlements?orderBy=updatedAt");
    expectProblem(byUpdate, 400, "validation_failed");
    expect(byUpdate.body.errors).toEqual([expect.objectContaining({ field: "orderBy" })]);
    expect((await api("GET", `/api/v1/entitlements?subject=${s.subject}&orderBy=createdAt`)).body.map((e: any) => e.id)).toEqual([s.entitlement.id]);
  });

  it("entitlements its object deleted while the index missed it (a failed D1 write, older code) are left out, and the index repaired", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const t = await setup({ entitlement: { issueAfterReset: 5 } });
    const at = Date.now() - 60_000;
    // The objects delete them without the route: the index rows stay live.
    for (const x of [s, t]) {
      await runInDurableObject(customerStub(x.subject), (instance) => {
        const o = instance as unknown as { sql: Sql };
        o.sql.exec("UPDATE entitlements SET deleted_at = ? WHERE id = ?", at, x.entitlement.id);
        o.sql.forget("entitlements:");
      });
    }
    const path = `/api/v1/entitlements?subject=${s.subject}&subject=${t.subject}&pageSize=10`;
    const first = await api("GET", path);
    expect(first.body.items).toEqual([]);
    // Repaired after the answer (waitUntil), both rows in one statement, with the objects' deletion times.
    let total = first.body.totalCount;
    for (let i = 0; i < 20 && total !== 0; i++) total = (await api("GET", path)).body.totalCount;
    expect(total).toBe(0);
    const rows = await env.DB.prepare("SELECT deleted_at AS d FROM entitlement_index WHERE id IN (?, ?)").bind(s.entitlement.id, t.entitlement.id).all<{ d: number }>();
    expect(rows.results.map((r) => r.d)).toEqual([at, at]);
  });

  it("serves OpenMeter's largest page, 1,000, and echoes it; limit too", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const paged = await api("GET", `/api/v1/entitlements?subject=${s.subject}&pageSize=1000`);
    expect(paged.status, paged.text).toBe(200);
    expect(paged.body).toMatchObject({ totalCount: 1, page: 1, pageSize: 1000 });
    expect(paged.body.items.map((e: any) => e.id)).toEqual([s.entitlement.id]);
    const ranged = await api("GET", `/api/v1/entitlements?subject=${s.subject}&limit=1000`);
    expect(ranged.status, ranged.text).toBe(200);
    expect(ranged.body.map((e: any) => e.id)).toEqual([s.entitlement.id]);
  });
});
