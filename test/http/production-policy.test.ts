import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { api, createKey, event, expectProblem } from "../helpers/api";

/**
 * Runs in the "production" vitest project (vitest.config.ts): wrangler.toml's production settings —
 * ALLOW_INSECURE_WEBHOOKS off, per-key rate limiting on — with a rate limit of 25 requests per 60 s,
 * small enough to reach. The ADMIN_API_KEY is limited too, so it is used only to create keys here.
 */

const LIMIT = 25;

describe("webhook URL policy with ALLOW_INSECURE_WEBHOOKS off", () => {
  let admin: string;
  beforeAll(async () => {
    admin = (await createKey({ scopes: ["admin"] })).key;
  });

  it("runs with the production setting", () => {
    expect(env.ALLOW_INSECURE_WEBHOOKS).toBe("false");
  });

  const refused: [url: string, reason: RegExp][] = [
    ["http://hooks.example.com/x", /only https URLs are allowed/],
    ["https://127.0.0.1/x", /loopback addresses are not allowed/],
    ["https://localhost:8443/x", /loopback/],
    ["https://[::1]/x", /loopback/],
    ["https://0x7f.1/x", /loopback/], // the URL parser normalises it to 127.0.0.1
    ["https://2130706433/x", /loopback/],
    ["https://[::ffff:127.0.0.1]/x", /loopback/],
    ["https://10.1.2.3/x", /private addresses/],
    ["https://192.168.0.10/x", /private addresses/],
    ["https://172.20.0.1/x", /private addresses/],
    ["https://169.254.169.254/latest/meta-data", /link-local addresses/],
    ["https://100.64.0.1/x", /shared \(CGNAT\)/],
    ["https://metadata.google.internal/x", /private addresses/],
    ["https://[fd00::1]/x", /private addresses/],
    ["https://0.0.0.0/x", /reserved addresses/],
  ];

  it("refuses every private, loopback, link-local or plain-http URL through the API, and stores none", async () => {
    const list = async () => (await api("GET", "/api/v1/notification/channels?includeDisabled=true&pageSize=1000", { key: admin })).body.items;
    const before = await list();
    for (const [url, reason] of refused) {
      const res = await api("POST", "/api/v1/notification/channels", { key: admin, body: { type: "WEBHOOK", name: "x", url } });
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors[0].field, url).toBe("url");
      expect(res.body.detail, url).toMatch(reason);
      expect(res.body.detail).toMatch(/ALLOW_INSECURE_WEBHOOKS|https/);
    }
    expect(await list()).toEqual(before);
  });

  it("accepts a public https URL, and refuses changing it to a private one", async () => {
    const created = await api("POST", "/api/v1/notification/channels", { key: admin, body: { type: "WEBHOOK", name: "public", url: "https://hooks.example.com/edgemeter" } });
    expect(created.status, created.text).toBe(201);
    const put = await api("PUT", `/api/v1/notification/channels/${created.body.id}`, { key: admin, body: { type: "WEBHOOK", name: "public", url: "https://10.0.0.5/hook" } });
    expectProblem(put, 400, "validation_failed");
    expect((await api("GET", `/api/v1/notification/channels/${created.body.id}`, { key: admin })).body.url).toBe("https://hooks.example.com/edgemeter");
  });
});

describe("per-key rate limit", () => {
  it(`answers 429 problem+json with Retry-After past ${LIMIT} requests per period, per key`, async () => {
    const { key } = await createKey({ scopes: ["read", "ingest"] });
    const other = await createKey({ scopes: ["read"] });
    let served = 0;
    let limited: Awaited<ReturnType<typeof api>> | undefined;
    // The limiter counts in fixed 60 s windows: a window may turn over once during the loop, so a
    // 429 must come within two windows' worth of requests, and never before LIMIT were served.
    for (let i = 0; i < 2 * LIMIT + 1 && !limited; i++) {
      const res = await api("GET", "/api/v1/meters", { key });
      if (res.status === 429) limited = res;
      else {
        expect(res.status, res.text).toBe(200);
        served++;
      }
    }
    expect(limited, "no 429 within two windows").toBeDefined();
    expect(served).toBeGreaterThanOrEqual(LIMIT);
    expectProblem(limited!, 429, "rate_limited");
    expect(limited!.headers.get("retry-after")).toBe("10");
    expect(limited!.body.detail).toMatch(/rate limit/);

    // Ingest is limited by the same key, and nothing is stored by a refused request.
    const refused = await api("POST", "/api/v1/events", { key, body: [event({ subject: "rate-limited" })] });
    if (refused.status === 429) {
      expectProblem(refused, 429, "rate_limited");
      expect((await api("GET", "/api/v1/events?subject=rate-limited", { key: other.key })).body).toEqual([]);
    }

    // Another key has its own budget.
    expect((await api("GET", "/api/v1/meters", { key: other.key })).status).toBe(200);
  });

  it("an unknown key is refused as unauthenticated, not rate limited", async () => {
    for (let i = 0; i < 3; i++) expectProblem(await api("GET", "/api/v1/meters", { key: "em_not-a-real-key" }), 401, "unauthenticated");
  });
});
