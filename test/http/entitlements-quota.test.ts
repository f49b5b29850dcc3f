import { exports } from "cloudflare:workers";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createClient, EdgemeterError } from "../../src/client/index";
import { quota, type QuotaVariables } from "../../src/client/quota";
import { createKey, listEvents } from "../helpers/api";
import { setup, valueOk, type Setup } from "../helpers/entitlements";

// The middleware's HTTP calls go to the real gateway, in this same workerd.
const gateway = (r: Request) => exports.default.fetch(r);

async function appFor(s: Setup, extra: Partial<Parameters<typeof quota>[0]> = {}) {
  const key = (await createKey({ scopes: ["ingest"] })).key;
  let served = 0;
  const app = new Hono<{ Variables: QuotaVariables }>();
  app.use(
    "/api/*",
    quota({
      baseUrl: "http://edgemeter.test",
      apiKey: key,
      fetch: gateway,
      subject: (c) => c.req.header("x-customer") ?? "anonymous",
      feature: s.feature,
      event: (c) => ({ type: s.eventType, data: { tokens: 1 }, ...(c.req.header("idempotency-key") ? { id: c.req.header("idempotency-key") } : {}) }),
      ...extra,
    }),
  );
  app.get("/api/hello", (c) => {
    served++;
    return c.json({ hello: "world", balance: c.get("quota")?.balance });
  });
  return { app, served: () => served };
}

describe("quota middleware", () => {
  it("serves while allowed, with the balance in headers, then answers 429 problem+json", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 3 } });
    const { app, served } = await appFor(s);
    const req = () => app.request("/api/hello", { headers: { "x-customer": s.subject } });
    for (let i = 1; i <= 3; i++) {
      const res = await req();
      expect(res.status).toBe(200);
      expect(res.headers.get("x-quota-balance")).toBe(String(3 - i));
      expect(res.headers.get("x-quota-usage")).toBe(String(i));
      expect(await res.json()).toEqual({ hello: "world", balance: 3 - i });
    }
    const denied = await req();
    expect(denied.status).toBe(429);
    expect(denied.headers.get("content-type")).toBe("application/problem+json");
    expect(denied.headers.get("x-quota-balance")).toBe("0");
    expect(denied.headers.get("x-quota-usage")).toBe("3");
    expect(await denied.json()).toMatchObject({ status: 429, code: "quota_exceeded", title: "Quota Exceeded", feature: s.feature, balance: 0, usage: 3 });
    expect(served()).toBe(3);
    expect(await valueOk(s)).toMatchObject({ usage: 3, overage: 0 });
  });

  it("admits exactly the limit under concurrency", async () => {
    const s = await setup({ aggregation: "COUNT", entitlement: { issueAfterReset: 10 } });
    const { app, served } = await appFor(s);
    const results = await Promise.all(Array.from({ length: 40 }, () => app.request("/api/hello", { headers: { "x-customer": s.subject } })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(10);
    expect(results.filter((r) => r.status === 429)).toHaveLength(30);
    expect(served()).toBe(10);
  });

  it("counts a retried request once when the event id is the client's idempotency key", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const { app } = await appFor(s);
    for (let i = 0; i < 3; i++) expect((await app.request("/api/hello", { headers: { "x-customer": s.subject, "idempotency-key": "req-1" } })).status).toBe(200);
    expect(await valueOk(s)).toMatchObject({ usage: 1 });
    expect(await listEvents(s.subject)).toHaveLength(1);
  });

  it("answers 403 without an entitlement, and 503 (or serves, failOpen) when edgemeter cannot answer", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const { app } = await appFor(s);
    const none = await app.request("/api/hello", { headers: { "x-customer": "nobody_here" } });
    expect(none.status).toBe(403);
    expect(((await none.json()) as { code: string }).code).toBe("no_entitlement");

    const down = async () => {
      throw new TypeError("connection refused");
    };
    const closed = await appFor(s, { fetch: down, retries: 0 });
    const r = await closed.app.request("/api/hello", { headers: { "x-customer": s.subject } });
    expect(r.status).toBe(503);
    expect(((await r.json()) as { code: string }).code).toBe("quota_unavailable");
    const open = await appFor(s, { fetch: down, retries: 0, failOpen: true });
    expect((await open.app.request("/api/hello", { headers: { "x-customer": s.subject } })).status).toBe(200);
  });

  it("takes only edgemeter's own not_found as no entitlement: another 404 (a proxy, a wrong host) is a failure, so 503 or failOpen", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 5 } });
    const proxy404 = async () => new Response("<html>404 Not Found</html>", { status: 404, headers: { "content-type": "text/html" } });
    const closed = await appFor(s, { fetch: proxy404 });
    const r = await closed.app.request("/api/hello", { headers: { "x-customer": s.subject } });
    expect(r.status).toBe(503);
    expect(((await r.json()) as { code: string }).code).toBe("quota_unavailable");
    const open = await appFor(s, { fetch: proxy404, failOpen: true });
    expect((await open.app.request("/api/hello", { headers: { "x-customer": s.subject } })).status).toBe(200);
  });
});

describe("client", () => {
  it("ingests, checks and reads values, and throws EdgemeterError with the problem", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    const em = createClient({ baseUrl: "http://edgemeter.test/", apiKey: "test-admin-key", fetch: gateway });
    const ing = await em.ingest({ id: "c-1", source: "client", type: s.eventType, subject: s.subject, data: { tokens: 2 } });
    expect(ing).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    const c = await em.check({ subject: s.subject, feature: s.feature, event: { type: s.eventType, data: { tokens: 3 } } });
    expect(c).toMatchObject({ allowed: true, usage: 5, balance: 5 });
    expect(await em.value(s.subject, s.feature)).toMatchObject({ hasAccess: true, usage: 5, balance: 5 });
    expect(await em.value(s.subject, s.feature, { time: new Date(Date.now() - 86_400_000 * 2) })).toMatchObject({ usage: 0 });
    const err = await em.value(s.subject, "nope").catch((e) => e);
    expect(err).toBeInstanceOf(EdgemeterError);
    expect(err.status).toBe(404);
    expect(err.problem.code).toBe("not_found");
  });

  it("retries a 5xx and keeps the event id, so a retried check counts once", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    let calls = 0;
    // The first answer is lost after the gateway recorded the event.
    const flaky = async (r: Request) => {
      calls++;
      const res = await gateway(r);
      return calls === 1 ? new Response("upstream hiccup", { status: 502 }) : res;
    };
    const em = createClient({ baseUrl: "http://edgemeter.test", apiKey: "test-admin-key", fetch: flaky });
    const c = await em.check({ subject: s.subject, feature: s.feature, event: { type: s.eventType, data: { tokens: 4 } } });
    expect(calls).toBe(2);
    expect(c).toMatchObject({ allowed: true, duplicate: true, usage: 4 });
  });

  it("retries a timeout while the answer's body arrives like any network error, and reports it as EdgemeterError", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    // The first attempt goes to a server (test/receiver.ts) that sends headers and one byte, then nothing.
    const stalled = (r: Request) => fetch(new Request("https://receiver.test/stalled-body/check", r));
    let calls = 0;
    const stallOnce = (r: Request) => (++calls === 1 ? stalled(r) : gateway(r));
    const em = createClient({ baseUrl: "http://edgemeter.test", apiKey: "test-admin-key", fetch: stallOnce, timeoutMs: 200 });
    const c = await em.check({ subject: s.subject, feature: s.feature, event: { type: s.eventType, data: { tokens: 2 } } });
    expect(calls).toBe(2);
    expect(c).toMatchObject({ allowed: true, usage: 2 });
    const once = createClient({ baseUrl: "http://edgemeter.test", apiKey: "test-admin-key", fetch: stalled, timeoutMs: 200, retries: 0 });
    const err = await once.check({ subject: s.subject, feature: s.feature }).catch((e) => e);
    expect(err).toBeInstanceOf(EdgemeterError);
    expect(err.status).toBe(0);
  });

  it("times out an attempt whose custom fetch ignores the abort signal, and retries it", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 10 } });
    let calls = 0;
    // Never settles and never looks at the signal, as some custom fetches (test doubles, wrappers) do.
    const deaf = (r: Request) => (++calls === 1 ? new Promise<Response>(() => {}) : gateway(r));
    const em = createClient({ baseUrl: "http://edgemeter.test", apiKey: "test-admin-key", fetch: deaf, timeoutMs: 200 });
    expect(await em.check({ subject: s.subject, feature: s.feature })).toMatchObject({ allowed: true });
    expect(calls).toBe(2);
    const once = createClient({ baseUrl: "http://edgemeter.test", apiKey: "test-admin-key", fetch: () => new Promise<Response>(() => {}), timeoutMs: 200, retries: 0 });
    const err = await once.value(s.subject, s.feature).catch((e) => e);
    expect(err).toBeInstanceOf(EdgemeterError);
    expect(err.status).toBe(0);
  });

  it("throws EdgemeterError, not SyntaxError, when a 2xx answer is not JSON", async () => {
    const html = async () => new Response("<html>captive portal</html>", { status: 200, headers: { "content-type": "text/html" } });
    const em = createClient({ baseUrl: "http://edgemeter.test", apiKey: "test-admin-key", fetch: html });
    const err = await em.value("anyone", "anything").catch((e) => e);
    expect(err).toBeInstanceOf(EdgemeterError);
    expect(err.status).toBe(200);
  });

  it("bounds the backoff between retries, however many are configured", async () => {
    const waits: number[] = [];
    const realSetTimeout = globalThis.setTimeout;
    // Record each sleep and skip it.
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      waits.push(ms ?? 0);
      return realSetTimeout(fn, 0);
    }) as typeof setTimeout;
    try {
      const down = async () => new Response("unavailable", { status: 503 });
      const em = createClient({ baseUrl: "http://edgemeter.test", apiKey: "test-admin-key", fetch: down, retries: 12 });
      expect(await em.value("anyone", "anything").catch((e) => e)).toBeInstanceOf(EdgemeterError);
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    expect(waits).toHaveLength(12);
    expect(Math.max(...waits)).toBeLessThanOrEqual(5_050);
  });
});
