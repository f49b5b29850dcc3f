import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { api, createKey, createMeter, event, expectProblem, ingestOk, sha256Hex, type Call } from "../helpers/api";

/** Consumer portal tokens (OpenMeter's /api/v1/portal/*): minted by an admin, usable only on the portal query. */

const TYPE = "portal_call";
const TOKENS = "tokens_portal";
const CALLS = "calls_portal";
const ALICE = "portal-alice";
const BOB = "portal-bob";

const mint = async (body: Record<string, unknown>, key?: string) => {
  const res = await api("POST", "/api/v1/portal/tokens", { body, key });
  expect(res.status, res.text).toBe(200);
  return res.body as { id: string; token: string; subject: string; expiresAt: string; expired: boolean; createdAt: string; allowedMeterSlugs?: string[] };
};
const portalQuery = (token: string, slug: string, qs = "", headers: Record<string, string> = {}): Promise<Call> =>
  api("GET", `/api/v1/portal/meters/${slug}/query${qs ? `?${qs}` : ""}`, { key: token, headers });
const invalidate = (body: Record<string, unknown>, key?: string) => api("POST", "/api/v1/portal/tokens/invalidate", { body, key });

beforeAll(async () => {
  await createMeter({ slug: TOKENS, eventType: TYPE, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
  await createMeter({ slug: CALLS, eventType: TYPE, aggregation: "COUNT" });
  await ingestOk([
    event({ type: TYPE, subject: ALICE, data: { tokens: 10, model: "a" } }),
    event({ type: TYPE, subject: ALICE, data: { tokens: 5, model: "b" } }),
    event({ type: TYPE, subject: BOB, data: { tokens: 100, model: "a" } }),
  ]);
});

describe("creating and listing portal tokens", () => {
  it("returns OpenMeter's PortalToken with the token once; default expiry 24 h; D1 keeps only its SHA-256", async () => {
    const before = Date.now();
    const t = await mint({ subject: ALICE, allowedMeterSlugs: [TOKENS] });
    expect(t).toMatchObject({ subject: ALICE, allowedMeterSlugs: [TOKENS], expired: false });
    expect(t.id).toMatch(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
    expect(t.token).toMatch(/^em_portal_[A-Za-z0-9_-]{43}$/);
    const ttl = Date.parse(t.expiresAt) - before;
    expect(ttl).toBeGreaterThan(24 * 3_600_000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(24 * 3_600_000 + 60_000);

    const list = await api("GET", "/api/v1/portal/tokens");
    expect(list.status).toBe(200);
    const listed = list.body.find((x: { id: string }) => x.id === t.id);
    expect(listed).toEqual({ id: t.id, subject: ALICE, allowedMeterSlugs: [TOKENS], expiresAt: t.expiresAt, expired: false, createdAt: t.createdAt });
    expect(list.text).not.toContain(t.token);

    const row = await env.DB.prepare("SELECT * FROM portal_tokens WHERE id = ?").bind(t.id).first<Record<string, unknown>>();
    expect(row!.token_hash).toBe(await sha256Hex(t.token));
    expect(JSON.stringify(row)).not.toContain(t.token.slice("em_portal_".length));
  });

  it("takes an explicit expiry up to 90 days ahead, and lists newest first with a limit", async () => {
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const a = await mint({ subject: BOB, expiresAt });
    expect(a.expiresAt).toBe(expiresAt);
    expect(a).not.toHaveProperty("allowedMeterSlugs");
    expectProblem(await api("POST", "/api/v1/portal/tokens", { body: { subject: BOB, expiresAt: new Date(Date.now() + 91 * 86_400_000).toISOString() } }), 400, "validation_failed");
    const b = await mint({ subject: BOB });
    const list = await api("GET", "/api/v1/portal/tokens?limit=2");
    expect(list.body.map((x: { id: string }) => x.id)).toEqual([b.id, a.id]);
    expectProblem(await api("GET", "/api/v1/portal/tokens?limit=101"), 400, "validation_failed");
  });

  it("needs the admin scope to create, list or invalidate", async () => {
    for (const scopes of [["read"], ["ingest"], ["read", "ingest"]]) {
      const { key } = await createKey({ scopes });
      expectProblem(await api("POST", "/api/v1/portal/tokens", { key, body: { subject: ALICE } }), 403, "forbidden");
      expectProblem(await api("GET", "/api/v1/portal/tokens", { key }), 403, "forbidden");
      expectProblem(await invalidate({ subject: ALICE }, key), 403, "forbidden");
    }
  });
});

describe("the portal query", () => {
  it("answers the token's subject exactly as the meter query does, whatever subject the query string names", async () => {
    const { token } = await mint({ subject: ALICE });
    const mine = await portalQuery(token, TOKENS, "groupBy=model&windowSize=DAY&windowTimeZone=Europe/Berlin");
    expect(mine.status, mine.text).toBe(200);
    const admin = await api("GET", `/api/v1/meters/${TOKENS}/query?subject=${ALICE}&groupBy=model&windowSize=DAY&windowTimeZone=Europe/Berlin`);
    expect(mine.body).toEqual(admin.body);
    expect(mine.body.data.map((r: { value: number }) => r.value).sort()).toEqual([10, 5].sort());

    // OpenMeter forces the token's subject: naming Bob changes nothing.
    const spoofed = await portalQuery(token, TOKENS, `subject=${BOB}&groupBy=subject`);
    expect(spoofed.status).toBe(200);
    expect(spoofed.body.data).toEqual([expect.objectContaining({ subject: ALICE, value: 15 })]);
    expect(spoofed.text).not.toContain(BOB);

    const csv = await portalQuery(token, CALLS, "", { accept: "text/csv" });
    expect(csv.headers.get("content-type")).toContain("text/csv");
    expect(csv.text).toContain(`,${ALICE},2`);
  });

  it("validates the query like the meter query does", async () => {
    const { token } = await mint({ subject: ALICE });
    expectProblem(await portalQuery(token, TOKENS, "windowSize=WEEK"), 400, "validation_failed");
    expectProblem(await portalQuery(token, TOKENS, "windowTimeZone=Mars/Olympus"), 400, "validation_failed");
    expectProblem(await portalQuery(token, TOKENS, "from=yesterday"), 400, "validation_failed");
    expectProblem(await portalQuery(token, "Not_A_Slug", ""), 400, "validation_failed");
    expectProblem(await portalQuery(token, "no_such_meter"), 404, "not_found");
  });

  it("allows only allowedMeterSlugs when given, without revealing whether others exist", async () => {
    const { token } = await mint({ subject: ALICE, allowedMeterSlugs: [CALLS] });
    expect((await portalQuery(token, CALLS)).status).toBe(200);
    const other = await portalQuery(token, TOKENS);
    const absent = await portalQuery(token, "no_such_meter");
    expectProblem(other, 403, "forbidden");
    expectProblem(absent, 403, "forbidden");
    expect(other.body.detail.replace(TOKENS, "X")).toBe(absent.body.detail.replace("no_such_meter", "X"));
  });

  it("an empty allowedMeterSlugs allows every meter, as OpenMeter reads it (stored as no restriction)", async () => {
    const t = await mint({ subject: ALICE, allowedMeterSlugs: [] });
    expect(t).not.toHaveProperty("allowedMeterSlugs");
    expect((await portalQuery(t.token, CALLS)).status).toBe(200);
    expect((await portalQuery(t.token, TOKENS)).status).toBe(200);
    const row = await env.DB.prepare("SELECT allowed_meter_slugs AS a FROM portal_tokens WHERE id = ?").bind(t.id).first<{ a: string | null }>();
    expect(row!.a).toBeNull();
  });

  it("meters are named by slug only on the portal route", async () => {
    const { token } = await mint({ subject: ALICE });
    const meter = await api("GET", `/api/v1/meters/${TOKENS}`);
    expectProblem(await portalQuery(token, meter.body.id.toLowerCase()), 404, "not_found");
  });

  it("answers HEAD as GET, which its Allow header names", async () => {
    const { token } = await mint({ subject: ALICE });
    const head = await api("HEAD", `/api/v1/portal/meters/${TOKENS}/query`, { key: token });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    expect(head.headers.get("content-type")).toContain("application/json");
    expect((await api("POST", `/api/v1/portal/meters/${TOKENS}/query`)).headers.get("allow")).toBe("GET, HEAD");
  });
});

describe("what a portal token cannot do", () => {
  it("works on no other route: 401 naming the portal route", async () => {
    const { token } = await mint({ subject: ALICE });
    const attempts: [string, string, unknown?][] = [
      ["GET", "/api/v1/meters"],
      ["GET", `/api/v1/meters/${TOKENS}/query?subject=${ALICE}`],
      ["POST", `/api/v1/meters/${TOKENS}/query`, { subject: [ALICE] }],
      ["GET", `/api/v1/events?subject=${ALICE}`],
      ["POST", "/api/v1/events", [event({ type: TYPE, subject: ALICE, data: { tokens: 1, model: "a" } })]],
      ["GET", "/api/v1/subjects"],
      ["GET", `/api/v1/subjects/${ALICE}/entitlements`],
      ["POST", "/api/v1/check", { subject: ALICE, feature: "x" }],
      ["GET", "/api/v1/portal/tokens"],
      ["POST", "/api/v1/portal/tokens", { subject: BOB }],
      ["POST", "/api/v1/portal/tokens/invalidate", { subject: ALICE }],
      ["GET", "/api/v1/keys"],
    ];
    for (const [method, path, body] of attempts) {
      const res = await api(method, path, { key: token, body });
      expectProblem(res, 401, "unauthenticated");
      expect(res.body.detail, `${method} ${path}`).toMatch(/portal token is accepted only by GET \/api\/v1\/portal\/meters\/\{meterSlug\}\/query/);
    }
    // Nothing was stored by the refused ingest.
    expect((await api("GET", `/api/v1/meters/${TOKENS}/query?subject=${ALICE}`)).body.data.reduce((a: number, r: { value: number }) => a + r.value, 0)).toBe(15);
  });

  it("the portal route takes portal tokens only: not API keys, not garbage, not nothing", async () => {
    const { key } = await createKey({ scopes: ["read"] });
    for (const credential of [key, "test-admin-key", "em_portal_forged", "em_portal_", null]) {
      const res = await portalQuery(credential as string, TOKENS);
      expectProblem(res, 401, "unauthenticated");
    }
    expect((await portalQuery(key, TOKENS)).body.detail).toMatch(/consumer portal token/);
  });
});

describe("expiry and invalidation", () => {
  it("an expired token answers 401 and is listed as expired", async () => {
    const t = await mint({ subject: ALICE, expiresAt: new Date(Date.now() + 1200).toISOString() });
    expect((await portalQuery(t.token, TOKENS)).status).toBe(200);
    await new Promise((r) => setTimeout(r, Date.parse(t.expiresAt) - Date.now() + 50));
    const res = await portalQuery(t.token, TOKENS);
    expectProblem(res, 401, "unauthenticated");
    expect(res.body.detail).toMatch(/expired/);
    const listed = (await api("GET", "/api/v1/portal/tokens?limit=100")).body.find((x: { id: string }) => x.id === t.id);
    expect(listed.expired).toBe(true);
  });

  it("invalidating by id stops that token at once and unlists it; idempotent", async () => {
    const a = await mint({ subject: ALICE });
    const b = await mint({ subject: ALICE });
    expect((await portalQuery(a.token, TOKENS)).status).toBe(200);
    expect((await invalidate({ id: a.id })).status).toBe(204);
    expectProblem(await portalQuery(a.token, TOKENS), 401, "unauthenticated");
    expect((await portalQuery(b.token, TOKENS)).status).toBe(200);
    expect((await api("GET", "/api/v1/portal/tokens?limit=100")).body.map((x: { id: string }) => x.id)).not.toContain(a.id);
    expect((await invalidate({ id: a.id })).status).toBe(204);
    expect((await invalidate({ id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" })).status).toBe(204);
  });

  it("invalidating by subject stops all of that subject's tokens, and no other subject's", async () => {
    const a1 = await mint({ subject: ALICE });
    const a2 = await mint({ subject: ALICE, allowedMeterSlugs: [CALLS] });
    const bob = await mint({ subject: BOB });
    expect((await invalidate({ subject: ALICE })).status).toBe(204);
    expectProblem(await portalQuery(a1.token, TOKENS), 401, "unauthenticated");
    expectProblem(await portalQuery(a2.token, CALLS), 401, "unauthenticated");
    expect((await portalQuery(bob.token, TOKENS)).body.data[0].value).toBe(100);
  });

  it("is per namespace: another namespace can neither list, invalidate nor use this namespace's tokens", async () => {
    const t = await mint({ subject: BOB });
    const other = await createKey({ scopes: ["admin"], namespace: "portal_other" });
    expect((await api("GET", "/api/v1/portal/tokens", { key: other.key })).body).toEqual([]);
    expect((await invalidate({ id: t.id }, other.key)).status).toBe(204);
    expect((await invalidate({ subject: BOB }, other.key)).status).toBe(204);
    expect((await portalQuery(t.token, TOKENS)).status).toBe(200);
    // A token minted in the other namespace sees that namespace only: there, the meter does not exist.
    const theirs = await mint({ subject: BOB }, other.key);
    expectProblem(await portalQuery(theirs.token, TOKENS), 404, "not_found");
  });
});

describe("the OpenAPI document", () => {
  it("lists the portal routes, the query under the portal-token scheme", async () => {
    const doc = (await api("GET", "/openapi.json", { key: null })).body;
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/v1/portal/tokens", "/api/v1/portal/tokens/invalidate", "/api/v1/portal/meters/{meterSlug}/query"]));
    expect(doc.paths["/api/v1/portal/meters/{meterSlug}/query"].get.security).toEqual([{ portalToken: [] }]);
    expect(doc.components.securitySchemes.portalToken).toMatchObject({ type: "http", scheme: "bearer" });
  });
});
