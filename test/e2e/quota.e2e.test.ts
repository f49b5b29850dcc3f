// The quota middleware in front of a small Hono app, calling a real `wrangler dev` gateway over HTTP.
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/client/index";
import { quota } from "../../src/client/quota";
import { startGateway, type Gateway } from "./harness.mjs";

describe("quota middleware end to end", () => {
  let gw: Gateway;
  let ingestKey: string;

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await gw.fetch(path, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
  };

  beforeAll(async () => {
    gw = await startGateway();
    expect((await admin("POST", "/api/v1/meters", { slug: "api_calls", eventType: "api_call", aggregation: "COUNT" })).status).toBe(201);
    expect((await admin("POST", "/api/v1/features", { key: "api_calls", name: "API calls", meterSlug: "api_calls" })).status).toBe(201);
    const key = await admin("POST", "/api/v1/keys", { name: "service", scopes: ["ingest"] });
    ingestKey = key.body.key;
  });

  afterAll(async () => {
    await gw?.cleanup();
  });

  it("admits exactly the limit across concurrent requests, then answers 429 with the balance", async () => {
    const subject = `e2e-${randomUUID()}`;
    const ent = await admin("POST", `/api/v1/subjects/${subject}/entitlements`, { type: "metered", featureKey: "api_calls", issueAfterReset: 20, usagePeriod: { interval: "MONTH" } });
    expect(ent.status, ent.text).toBe(201);

    const app = new Hono();
    let served = 0;
    app.use("/v1/*", quota({ baseUrl: gw.baseUrl, apiKey: ingestKey, subject: (c) => c.req.header("x-customer")!, feature: "api_calls", event: () => ({ type: "api_call" }) }));
    app.get("/v1/thing", (c) => {
      served++;
      return c.text("ok");
    });

    const results = await Promise.all(Array.from({ length: 60 }, () => app.request("/v1/thing", { headers: { "x-customer": subject } })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(20);
    const denied = results.filter((r) => r.status === 429);
    expect(denied).toHaveLength(40);
    expect(denied[0]!.headers.get("x-quota-balance")).toBe("0");
    expect(served).toBe(20);

    const value = await createClient({ baseUrl: gw.baseUrl, apiKey: gw.adminKey }).value(subject, "api_calls");
    expect(value).toMatchObject({ hasAccess: false, balance: 0, usage: 20, overage: 0 });
  });
});
