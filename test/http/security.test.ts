import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ADMIN, api, createKey, createMeter, event, expectProblem, ingestOk, sha256Hex, type Call } from "../helpers/api";
import { eventually } from "../helpers/notifications";

/**
 * Security: namespaces (another tenant cannot read, change or even detect anything), scopes, what D1
 * stores of credentials, and what reaches the logs. Namespace A is `default` (the ADMIN_API_KEY's).
 */

const T = "sec_call";
const A = { meter: "sec_tokens", feature: "sec_feature", subject: "sec-customer" } as Record<string, string>;
/** Ids and names that never existed: B's answer for A's things must look exactly like its answer for these. */
const NEVER: Record<string, string> = {
  meter: "never_meter",
  meterId: "01JNEVERMETER0000000000000",
  feature: "never_feature",
  featureId: "01JNEVERFEATURE00000000000",
  subject: "never-customer",
  entitlement: "01JNEVERENTITLEMENT0000000",
  grant: "01JNEVERGRANT0000000000000",
  channel: "01JNEVERCHANNE00000000000",
  rule: "01JNEVERRULE00000000000000",
  notification: "01JNEVERN0TIFICATI0N000000",
  key: "01JNEVERKEY000000000000000",
};
/** Every secret this file creates: none may appear in D1 (except as a hash) or in any log line. */
const secrets: string[] = [ADMIN];
const logs: string[] = [];
let B: string;

const fill = (s: string, values: Record<string, string>) => s.replace(/\{(\w+)\}/g, (_, k: string) => values[k] ?? `{${k}}`);
const fillBody = (body: unknown, values: Record<string, string>) => (body === undefined ? undefined : JSON.parse(fill(JSON.stringify(body), values)));
/** The detail with every named value replaced by its name, so answers about different ids compare. */
const neutral = (detail: string, values: Record<string, string>) =>
  Object.entries(values)
    .sort((a, b) => b[1].length - a[1].length)
    .reduce((d, [k, v]) => d.split(v).join(`{${k}}`), detail);

beforeAll(async () => {
  for (const m of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
      logs.push(args.map((a) => (typeof a === "string" ? a : a instanceof Error ? `${a.message}\n${a.stack}` : JSON.stringify(a))).join(" "));
    });
  }
  const meter = await createMeter({ slug: A.meter, eventType: T, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
  A.meterId = meter.body.id;
  const feature = await api("POST", "/api/v1/features", { body: { key: A.feature, name: "f", meterSlug: A.meter } });
  A.featureId = feature.body.id;
  const ent = await api("POST", `/api/v1/subjects/${A.subject}/entitlements`, { body: { type: "metered", featureKey: A.feature, usagePeriod: { interval: "MONTH" }, issueAfterReset: 100 } });
  expect(ent.status, ent.text).toBe(201);
  A.entitlement = ent.body.id;
  const grant = await api("POST", `/api/v1/subjects/${A.subject}/entitlements/${A.feature}/grants`, { body: { amount: 50, effectiveAt: new Date().toISOString(), expiration: { duration: "MONTH", count: 1 } } });
  expect(grant.status, grant.text).toBe(201);
  A.grant = grant.body.id;
  const channel = await api("POST", "/api/v1/notification/channels", { body: { type: "WEBHOOK", name: "sec", url: "https://receiver.test/hooks/sec", customHeaders: { authorization: "Bearer receiver-token-a" } } });
  expect(channel.status, channel.text).toBe(201);
  A.channel = channel.body.id;
  secrets.push(channel.body.signingSecret, "receiver-token-a");
  const rule = await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.balance.threshold", name: "sec", channels: [A.channel], thresholds: [{ type: "usage_value", value: 1 }], features: [A.feature] } });
  A.rule = rule.body.id;
  await ingestOk([event({ type: T, subject: A.subject, data: { tokens: 7, model: "m" } })]);
  const notifications = await eventually(
    async () => (await api("GET", "/api/v1/notification/events")).body.items as { id: string }[],
    (items) => items.length > 0,
  );
  A.notification = notifications[0]!.id;
  const key = await createKey({ scopes: ["read"] });
  A.key = key.id;
  secrets.push(key.key);
  const b = await createKey({ scopes: ["admin"], namespace: "tenant_b" });
  B = b.key;
  secrets.push(B);
});

afterAll(() => vi.restoreAllMocks());

/** Everything of namespace A a request from B could have changed. */
async function stateOfA() {
  const get = async (path: string) => (await api("GET", path)).body;
  return {
    meter: await get(`/api/v1/meters/${A.meter}`),
    usage: await get(`/api/v1/meters/${A.meter}/query?subject=${A.subject}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`),
    feature: await get(`/api/v1/features/${A.feature}`),
    entitlement: await get(`/api/v1/subjects/${A.subject}/entitlements/${A.entitlement}`),
    value: await get(`/api/v1/subjects/${A.subject}/entitlements/${A.feature}/value`),
    grants: await get(`/api/v1/subjects/${A.subject}/entitlements/${A.feature}/grants`),
    channel: await get(`/api/v1/notification/channels/${A.channel}`),
    rule: await get(`/api/v1/notification/rules/${A.rule}`),
    keys: (await get("/api/v1/keys")).map((k: { id: string }) => k.id),
  };
}

describe("namespaces: B can neither read, change nor detect A's data", () => {
  const now = new Date().toISOString();
  const cases: [method: string, path: string, body?: unknown][] = [
    ["GET", "/api/v1/meters/{meter}"],
    ["GET", "/api/v1/meters/{meterId}"],
    ["PUT", "/api/v1/meters/{meter}", { name: "taken over" }],
    ["DELETE", "/api/v1/meters/{meter}"],
    ["GET", "/api/v1/meters/{meter}/query?subject={subject}"],
    ["POST", "/api/v1/meters/{meter}/query", { subject: ["{subject}"] }],
    ["GET", "/api/v1/meters/{meter}/subjects"],
    ["GET", "/api/v1/meters/{meter}/group-by/model/values"],
    ["GET", "/api/v1/features/{feature}"],
    ["GET", "/api/v1/features/{featureId}"],
    ["DELETE", "/api/v1/features/{feature}"],
    ["GET", "/api/v1/subjects/{subject}/entitlements/{entitlement}"],
    ["DELETE", "/api/v1/subjects/{subject}/entitlements/{entitlement}"],
    ["GET", "/api/v1/subjects/{subject}/entitlements/{feature}/value"],
    ["POST", "/api/v1/subjects/{subject}/entitlements/{entitlement}/reset", {}],
    ["GET", "/api/v1/subjects/{subject}/entitlements/{feature}/grants"],
    ["POST", "/api/v1/subjects/{subject}/entitlements/{feature}/grants", { amount: 1, effectiveAt: now, expiration: { duration: "DAY", count: 1 } }],
    ["DELETE", "/api/v1/grants/{grant}"],
    ["POST", "/api/v1/check", { subject: "{subject}", feature: "{feature}" }],
    ["GET", "/api/v1/notification/channels/{channel}"],
    ["PUT", "/api/v1/notification/channels/{channel}", { type: "WEBHOOK", name: "x", url: "https://receiver.test/hooks/b" }],
    ["DELETE", "/api/v1/notification/channels/{channel}"],
    ["GET", "/api/v1/notification/rules/{rule}"],
    ["DELETE", "/api/v1/notification/rules/{rule}"],
    ["POST", "/api/v1/notification/rules/{rule}/test"],
    ["GET", "/api/v1/notification/events/{notification}"],
    ["POST", "/api/v1/notification/events/{notification}/resend", {}],
    ["DELETE", "/api/v1/keys/{key}"],
  ];

  it("answers 404 exactly as for something that never existed, on every route", async () => {
    const before = await stateOfA();
    for (const [method, path, body] of cases) {
      const theirs: Call = await api(method, fill(path, A), { key: B, body: fillBody(body, A) });
      const absent: Call = await api(method, fill(path, NEVER), { key: B, body: fillBody(body, NEVER) });
      const label = `${method} ${path}`;
      expectProblem(theirs, 404, "not_found");
      expect(absent.status, label).toBe(404);
      expect(neutral(theirs.body.detail, A), label).toBe(neutral(absent.body.detail, NEVER));
    }
    expect(await stateOfA()).toEqual(before);
  });

  it("B's lists never show A's things", async () => {
    const b = (path: string) => api("GET", path, { key: B });
    const text = [
      (await b("/api/v1/meters")).text,
      (await b("/api/v1/features?includeArchived=true")).text,
      (await b("/api/v1/subjects")).text,
      (await b(`/api/v1/events?subject=${A.subject}`)).text,
      (await b(`/api/v1/subjects/${A.subject}/entitlements?includeDeleted=true`)).text,
      (await b("/api/v1/notification/channels?includeDisabled=true")).text,
      (await b("/api/v1/notification/rules?includeDisabled=true")).text,
      (await b("/api/v1/notification/events")).text,
      (await b("/api/v1/keys")).text,
      (await b("/api/v1/portal/tokens")).text,
    ].join("\n");
    for (const [name, value] of Object.entries(A)) expect(text, name).not.toContain(value);
    // Asking for A's namespace by name is refused, not answered.
    expectProblem(await b("/api/v1/keys?namespace=default"), 403, "forbidden");
  });

  it("B's events for the same subject name count in B only; B's portal token sees B only", async () => {
    const before = await stateOfA();
    await createMeter({ slug: A.meter, eventType: T, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } }, B);
    await ingestOk([event({ type: T, subject: A.subject, data: { tokens: 1000, model: "m" } })], { key: B });
    expect((await api("GET", `/api/v1/meters/${A.meter}/query?subject=${A.subject}`, { key: B })).body.data[0].value).toBe(1000);
    const token = await api("POST", "/api/v1/portal/tokens", { key: B, body: { subject: A.subject } });
    secrets.push(token.body.token);
    expect((await api("GET", `/api/v1/portal/meters/${A.meter}/query`, { key: token.body.token })).body.data[0].value).toBe(1000);
    // And B invalidating "A's" subject touches B's tokens only.
    const mine = await api("POST", "/api/v1/portal/tokens", { body: { subject: A.subject } });
    secrets.push(mine.body.token);
    expect((await api("POST", "/api/v1/portal/tokens/invalidate", { key: B, body: { subject: A.subject } })).status).toBe(204);
    expect((await api("GET", `/api/v1/portal/meters/${A.meter}/query`, { key: mine.body.token })).body.data[0].value).toBe(7);
    expect(await stateOfA()).toEqual(before);
  });
});

describe("scopes", () => {
  const reads = ["/api/v1/meters", "/api/v1/meters/{meter}", "/api/v1/meters/{meter}/query?subject={subject}", "/api/v1/meters/{meter}/subjects", "/api/v1/events?subject={subject}", "/api/v1/subjects", "/api/v1/features", "/api/v1/subjects/{subject}/entitlements", "/api/v1/subjects/{subject}/entitlements/{feature}/value", "/api/v1/subjects/{subject}/entitlements/{feature}/grants", "/api/v1/notification/channels", "/api/v1/notification/rules", "/api/v1/notification/events", "/api/v1/keys", "/api/v1/portal/tokens"];
  const now = new Date().toISOString();
  const definitions: [string, string, unknown?][] = [
    ["POST", "/api/v1/meters", { slug: "sec_new", eventType: T, aggregation: "COUNT" }],
    ["PUT", "/api/v1/meters/{meter}", { name: "renamed" }],
    ["DELETE", "/api/v1/meters/{meter}"],
    ["POST", "/api/v1/features", { key: "sec_new", name: "x" }],
    ["DELETE", "/api/v1/features/{feature}"],
    ["POST", "/api/v1/subjects/{subject}/entitlements", { type: "boolean", featureKey: "sec_other" }],
    ["DELETE", "/api/v1/subjects/{subject}/entitlements/{entitlement}"],
    ["POST", "/api/v1/subjects/{subject}/entitlements/{entitlement}/reset", {}],
    ["POST", "/api/v1/subjects/{subject}/entitlements/{feature}/grants", { amount: 1, effectiveAt: now, expiration: { duration: "DAY", count: 1 } }],
    ["DELETE", "/api/v1/grants/{grant}"],
    ["POST", "/api/v1/notification/channels", { type: "WEBHOOK", name: "x", url: "https://receiver.test/hooks/x" }],
    ["DELETE", "/api/v1/notification/channels/{channel}"],
    ["POST", "/api/v1/notification/rules", { type: "entitlements.reset", name: "x", channels: ["{channel}"] }],
    ["DELETE", "/api/v1/notification/rules/{rule}"],
    ["POST", "/api/v1/notification/events/{notification}/resend", {}],
    ["POST", "/api/v1/keys", { name: "x", scopes: ["admin"] }],
    ["DELETE", "/api/v1/keys/{key}"],
    ["POST", "/api/v1/portal/tokens", { subject: "{subject}" }],
    ["POST", "/api/v1/portal/tokens/invalidate", { subject: "{subject}" }],
  ];
  const ingestBody = () => [event({ type: T, subject: A.subject, data: { tokens: 1, model: "m" } })];

  it("an ingest-only key ingests and checks, and reads or defines nothing", async () => {
    const { key } = await createKey({ scopes: ["ingest"] });
    secrets.push(key);
    const before = await stateOfA();
    for (const path of reads) expectProblem(await api("GET", fill(path, A), { key }), 403, "forbidden");
    for (const [method, path, body] of definitions) expectProblem(await api(method, fill(path, A), { key, body: fillBody(body, A) }), 403, "forbidden");
    expect(await stateOfA()).toEqual(before);
    expect((await api("POST", "/api/v1/events", { key, body: ingestBody() })).status).toBe(202);
    const check = await api("POST", "/api/v1/check", { key, body: { subject: A.subject, feature: A.feature } });
    expect(check.status, check.text).toBe(200);
  });

  it("a read key reads, and neither ingests, checks nor changes a definition", async () => {
    const { key } = await createKey({ scopes: ["read"] });
    secrets.push(key);
    for (const path of reads.filter((p) => !p.startsWith("/api/v1/keys") && !p.startsWith("/api/v1/portal"))) {
      const res = await api("GET", fill(path, A), { key });
      expect(res.status, `${path}: ${res.text}`).toBe(200);
    }
    // Keys and portal tokens are credentials: admin only.
    expectProblem(await api("GET", "/api/v1/keys", { key }), 403, "forbidden");
    expectProblem(await api("GET", "/api/v1/portal/tokens", { key }), 403, "forbidden");
    const before = await stateOfA();
    expectProblem(await api("POST", "/api/v1/events", { key, body: ingestBody() }), 403, "forbidden");
    expectProblem(await api("POST", "/api/v1/check", { key, body: { subject: A.subject, feature: A.feature, event: ingestBody()[0] } }), 403, "forbidden");
    for (const [method, path, body] of definitions) {
      const res = await api(method, fill(path, A), { key, body: fillBody(body, A) });
      expectProblem(res, 403, "forbidden");
      expect(res.body.detail).toMatch(/lacks the `(admin|ingest)` scope/);
    }
    expect(await stateOfA()).toEqual(before);
  });
});

describe("webhook credentials are for admin keys only", () => {
  it("a read key sees channels without the signing secret or custom header values", async () => {
    const { key } = await createKey({ scopes: ["read"] });
    secrets.push(key);
    const admin = await api("GET", `/api/v1/notification/channels/${A.channel}`);
    expect(admin.body.signingSecret).toMatch(/^whsec_/);
    expect(admin.body.customHeaders).toEqual({ authorization: "Bearer receiver-token-a" });
    for (const res of [await api("GET", `/api/v1/notification/channels/${A.channel}`, { key }), await api("GET", "/api/v1/notification/channels", { key })]) {
      expect(res.status).toBe(200);
      expect(res.text).not.toContain(admin.body.signingSecret);
      expect(res.text).not.toContain("receiver-token-a");
    }
    const one = (await api("GET", `/api/v1/notification/channels/${A.channel}`, { key })).body;
    expect(one).not.toHaveProperty("signingSecret");
    expect(one.customHeaders).toEqual({ authorization: "<redacted>" });
  });
});

describe("credentials at rest and in logs", () => {
  it("D1 holds no plaintext API key or portal token: only their SHA-256", async () => {
    const keys = [await createKey({ scopes: ["ingest"] }), await createKey({ scopes: ["admin"], namespace: "tenant_c" })];
    const token = (await api("POST", "/api/v1/portal/tokens", { body: { subject: A.subject } })).body;
    secrets.push(...keys.map((k) => k.key), token.token);
    const tables = (await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'").all<{ name: string }>()).results.map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(["api_keys", "portal_tokens", "notification_channels"]));
    let dump = "";
    for (const t of tables) dump += JSON.stringify((await env.DB.prepare(`SELECT * FROM "${t}"`).all()).results);
    for (const s of [...secrets.filter((s) => s.startsWith("em_")), ADMIN]) {
      expect(dump).not.toContain(s);
      // Not even the random part without its prefix.
      expect(dump).not.toContain(s.replace(/^em_(portal_)?/, "").slice(0, 20));
    }
    for (const k of keys) expect(dump).toContain(await sha256Hex(k.key));
    expect(dump).toContain(await sha256Hex(token.token));
  });

  /** Runs `fn` while the D1 table is renamed away, so the route's write fails. */
  async function withoutTable<T>(table: string, fn: () => Promise<T>): Promise<T> {
    await env.DB.exec(`ALTER TABLE ${table} RENAME TO ${table}_away`);
    try {
      return await fn();
    } finally {
      await env.DB.exec(`ALTER TABLE ${table}_away RENAME TO ${table}`);
    }
  }

  it("a failed query is logged without its bound parameters (drizzle puts them in the error message)", async () => {
    const marker = "param-marker-7f3a";
    const seen = logs.length;
    const res = await withoutTable("api_keys", () => api("POST", "/api/v1/keys", { body: { name: marker, scopes: ["read"] } }));
    expectProblem(res, 500, "internal");
    const logged = logs.slice(seen).join("\n");
    expect(logged).toMatch(/failed query/);
    expect(logged).not.toContain(marker);
  });

  it("a failed write that carried a signing secret and header values does not log them", async () => {
    const signingSecret = "whsec_" + btoa("log-leak-check-0123456789abcdef");
    secrets.push(signingSecret, "receiver-token-b");
    const seen = logs.length;
    const res = await withoutTable("notification_channels", () =>
      api("POST", "/api/v1/notification/channels", { body: { type: "WEBHOOK", name: "leak", url: "https://receiver.test/hooks/leak", signingSecret, customHeaders: { authorization: "Bearer receiver-token-b" } } }),
    );
    expectProblem(res, 500, "internal");
    const logged = logs.slice(seen).join("\n");
    expect(logged).toMatch(/unhandled/);
    expect(logged).not.toContain(signingSecret);
    expect(logged).not.toContain("receiver-token-b");
  });

  it("no secret of this file ever reached a log line", () => {
    expect(logs.length).toBeGreaterThan(0);
    const all = logs.join("\n");
    for (const s of secrets) expect(all).not.toContain(s);
  });
});
