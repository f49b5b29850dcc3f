import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, api, createMeter, type Call } from "../helpers/api";
import { corpus, ev, FEATURE, METER, SPARE_FEATURE, SUBJECT, TYPE, type Case } from "./hostile-corpus";

/**
 * The hostile-input corpus (hostile-corpus.ts) through the real Worker entry point. Every row must
 * answer its precise 4xx as application/problem+json with a stable code and a useful detail, never a
 * 5xx — or, for well-formed events a meter cannot read, a 202 that lists them as rejected — and leave
 * every stored thing exactly as it was: definitions, events, usage, entitlements, grants, D1 rows.
 */

const fixtures: Record<string, string> = {};

async function send(c: Case): Promise<Call> {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` };
  let body: Uint8Array | undefined;
  if (c.raw !== undefined) body = typeof c.raw === "string" ? new TextEncoder().encode(c.raw) : c.raw;
  else if (c.body !== undefined) body = new TextEncoder().encode(JSON.stringify(c.body).replaceAll("{channel}", fixtures.channel!));
  if (body !== undefined && c.type !== null) headers["content-type"] = c.type ?? "application/json";
  const res = await exports.default.fetch(new Request(`http://edgemeter.test${c.path}`, { method: c.method, headers, body }));
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

const ok = async (path: string) => {
  const r = await api("GET", path);
  expect(r.status, `${path}: ${r.text}`).toBe(200);
  return r.body;
};

/** D1 tables a request writes synchronously (snapshot tables are written later by alarms, and only from counted usage). */
async function d1Counts(): Promise<Record<string, number>> {
  const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'd1_%' AND name NOT LIKE 'sqlite_%'").all<{ name: string }>();
  const out: Record<string, number> = {};
  for (const { name } of tables.results) {
    if (name.startsWith("usage_snapshot") || name === "snapshot_subjects") continue;
    out[name] = (await env.DB.prepare(`SELECT count(*) AS n FROM "${name}"`).first<{ n: number }>())!.n;
  }
  return out;
}

/** Everything a rejected request could have changed, read back through the API and from D1. */
async function state() {
  const since = new Date(Date.now() - 400 * 86_400_000).toISOString();
  return {
    meters: await ok("/api/v1/meters"),
    features: await ok("/api/v1/features?includeArchived=true"),
    channels: await ok("/api/v1/notification/channels?includeDisabled=true&pageSize=1000"),
    rules: await ok("/api/v1/notification/rules?includeDisabled=true&pageSize=1000"),
    subjects: await ok("/api/v1/subjects"),
    keys: await ok("/api/v1/keys"),
    portalTokens: await ok("/api/v1/portal/tokens?limit=100"),
    events: await ok(`/api/v1/events?subject=${SUBJECT}&from=${since}`),
    // A fixed range: the default `to` (now) moves with the clock.
    usage: await ok(`/api/v1/meters/${METER}/query?subject=${SUBJECT}&groupBy=model&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`),
    entitlements: await ok(`/api/v1/subjects/${SUBJECT}/entitlements?includeDeleted=true`),
    value: await ok(`/api/v1/subjects/${SUBJECT}/entitlements/${FEATURE}/value`),
    grants: await ok(`/api/v1/subjects/${SUBJECT}/entitlements/${FEATURE}/grants?includeDeleted=true`),
    d1: await d1Counts(),
  };
}

beforeAll(async () => {
  await createMeter({ slug: METER, eventType: TYPE, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
  for (const key of [FEATURE, SPARE_FEATURE]) expect((await api("POST", "/api/v1/features", { body: { key, name: key, meterSlug: METER } })).status).toBe(201);
  const ent = await api("POST", `/api/v1/subjects/${SUBJECT}/entitlements`, { body: { type: "metered", featureKey: FEATURE, usagePeriod: { interval: "MONTH" }, issueAfterReset: 100 } });
  expect(ent.status, ent.text).toBe(201);
  const res = await api("POST", "/api/v1/events", { body: [ev({ data: { tokens: 5, model: "a" } }), ev({ data: { tokens: 7, model: "b" } })] });
  expect(res.body).toMatchObject({ accepted: 2, rejected: [] });
  const ch = await api("POST", "/api/v1/notification/channels", { body: { type: "WEBHOOK", name: "fixture", url: "https://receiver.test/hooks/hostile-fixture" } });
  expect(ch.status, ch.text).toBe(201);
  fixtures.channel = ch.body.id;
  const rule = await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.balance.threshold", name: "fixture", channels: [ch.body.id], thresholds: [{ type: "usage_value", value: 50 }] } });
  expect(rule.status, rule.text).toBe(201);
});

describe("hostile and malformed input", () => {
  it("has at least 60 cases", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(60);
    expect(new Set(corpus.map((c) => c.name)).size).toBe(corpus.length);
  });

  for (const c of corpus) {
    it(c.name, async () => {
      const before = await state();
      const res = await send(c);
      expect(res.status, res.text).toBeLessThan(500);
      if ("rejected" in c.expect) {
        expect(res.status, res.text).toBe(202);
        expect(res.body.accepted, res.text).toBe(0);
        expect(res.body.rejected, res.text).toHaveLength(1);
        expect(res.body.rejected[0].reason).toMatch(c.expect.rejected);
      } else {
        expect(res.status, res.text).toBe(c.expect.status);
        expect(res.headers.get("content-type")).toBe("application/problem+json");
        expect(res.body, res.text).toMatchObject({ code: c.expect.code, status: c.expect.status, type: `urn:edgemeter:problem:${c.expect.code}` });
        expect(res.body.detail).toMatch(c.expect.detail);
        // Problem details are for humans: bounded, whatever the input's size.
        expect(res.text.length).toBeLessThan(20_000);
      }
      expect(await state()).toEqual(before);
    });
  }
});

describe("hostile but valid input is counted exactly", () => {
  it("group values named like Object.prototype members are ordinary groups", async () => {
    const subject = "hostile-valid";
    const names = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];
    const res = await api("POST", "/api/v1/events", { body: names.map((model, i) => ev({ subject, data: { tokens: i + 1, model } })) });
    expect(res.body, res.text).toMatchObject({ accepted: names.length, rejected: [] });
    const rows = await ok(`/api/v1/meters/${METER}/query?subject=${subject}&groupBy=model`);
    expect(Object.fromEntries(rows.data.map((r: { groupBy: { model: string }; value: number }) => [r.groupBy.model, r.value]))).toEqual(
      Object.fromEntries(names.map((m, i) => [m, i + 1])),
    );
    // Filtering by such a value works too (filterGroupBy[model]=__proto__).
    const only = await ok(`/api/v1/meters/${METER}/query?subject=${subject}&filterGroupBy[model]=__proto__`);
    expect(only.data.map((r: { value: number }) => r.value)).toEqual([1]);
  });

  it("group keys named like Object.prototype members filter by GET filterGroupBy[key]", async () => {
    const slug = "hostile_proto_keys";
    const type = "hostile_proto";
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.v", groupBy: { constructor: "$.c", toString: "$.t" } });
    const subject = "hostile-proto-keys";
    const res = await api("POST", "/api/v1/events", { body: [ev({ subject, type, data: { v: 1, c: "x" } }), ev({ subject, type, data: { v: 2, c: "y", t: "x" } }), ev({ subject, type, data: { v: 4 } })] });
    expect(res.body, res.text).toMatchObject({ accepted: 3, rejected: [] });
    const sum = async (qs: string) => (await ok(`/api/v1/meters/${slug}/query?subject=${subject}&${qs}`)).data.reduce((a: number, r: { value: number }) => a + r.value, 0);
    expect(await sum("filterGroupBy[constructor]=x")).toBe(1);
    expect(await sum("filterGroupBy[toString]=x")).toBe(2);
    expect(await sum("filterGroupBy[constructor]=x&filterGroupBy[constructor]=y")).toBe(3);
  });

  it("numeric strings, -0, negatives and the largest accepted magnitude", async () => {
    const subject = "hostile-numbers";
    const res = await api("POST", "/api/v1/events", {
      body: [ev({ subject, data: { tokens: "12.5", model: "a" } }), ev({ subject, data: { tokens: "-0", model: "a" } }), ev({ subject, data: { tokens: -2.5, model: "a" } })],
    });
    expect(res.body, res.text).toMatchObject({ accepted: 3, rejected: [] });
    expect((await ok(`/api/v1/meters/${METER}/query?subject=${subject}`)).data[0].value).toBe(10);
    const big = await api("POST", "/api/v1/events", { body: Array.from({ length: 1000 }, () => ev({ subject: "hostile-big", data: { tokens: 1e100, model: "a" } })) });
    expect(big.body, big.text).toMatchObject({ accepted: 1000, rejected: [] });
    expect((await ok(`/api/v1/meters/${METER}/query?subject=hostile-big`)).data[0].value).toBeCloseTo(1e103, -90);
  });
});
