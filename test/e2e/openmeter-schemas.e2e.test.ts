// Every OpenMeter v1 operation edgemeter serves answers bodies that validate against the response
// schema OpenMeter's spec declares for that operation, status and content type. Strict generated
// clients (Go oapi-codegen, Python, Java) fail on a missing required field, a null the spec does not
// allow or a date-time that is not RFC 3339 even where the JS SDK (openmeter-sdk.e2e.test.ts) copes.
//
// The spec is docs/reference/openmeter-v1-subset.yaml (unchanged from OpenMeter's).
import Ajv, { type ErrorObject, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type Gateway } from "./harness.mjs";
import { startReceiver, type Receiver } from "./webhook-receiver.mjs";

const SPEC_PATH = fileURLToPath(new URL("../../docs/reference/openmeter-v1-subset.yaml", import.meta.url));

type Json = any;

/**
 * Answers that differ from the spec on purpose, as README "Compatibility with OpenMeter" says: the
 * status is checked, the body is not validated. Nothing else is exempt.
 */
const DOCUMENTED: Record<string, { status: number; why: string }> = {
  ingestEvents: { status: 202, why: "202 {accepted, duplicates, rejected} where OpenMeter answers an empty 204; clients ignore the body" },
};

interface Operation {
  id: string;
  method: string;
  path: string;
  responses: Record<string, { content?: Record<string, { schema: Json }> }>;
}

/**
 * OpenAPI 3.0 → JSON Schema for ajv: `nullable: true` becomes a union with null (ajv's own `nullable`
 * refuses schemas without `type`, as the spec's `allOf: [$ref]` properties are, and lets the allOf
 * parts refuse the null), and discriminator mappings go (ajv picks the branch by the tag's enum
 * itself and refuses `mapping`).
 */
function toJsonSchema(node: Json): Json {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== "object") return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "$ref" && typeof v === "string") out[k] = v.replace(/^#/, "openmeter#");
    else if (k === "discriminator") out[k] = { propertyName: (v as Json).propertyName };
    // `example` values are not schemas (and some hold keys such as `type` that look like one).
    else if (k === "example" || k === "examples" || k.startsWith("x-")) continue;
    else out[k] = toJsonSchema(v);
  }
  if (out.nullable !== true) {
    delete out.nullable;
    return out;
  }
  delete out.nullable;
  // With allOf/$ref the parts would still refuse null (`type: object, allOf: [Metadata], nullable`).
  if (typeof out.type === "string" && !["allOf", "anyOf", "oneOf", "$ref"].some((k) => k in out)) {
    out.type = [out.type, "null"];
    if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
    return out;
  }
  return { anyOf: [out, { type: "null" }] };
}

function loadSpec() {
  if (!existsSync(SPEC_PATH)) throw new Error(`OpenMeter spec not found at ${SPEC_PATH}`);
  const spec = parse(readFileSync(SPEC_PATH, "utf8"));
  // unicodeRegExp off: the spec's patterns are ECMA-262 without the u flag (`\-` is refused with it).
  const ajv = new Ajv({ strict: false, allErrors: true, discriminator: true, unicodeRegExp: false });
  addFormats(ajv);
  // RFC 3339 as Go's time.Time and other strict clients parse it: 'T' and a zone are required
  // (ajv-formats 2's date-time takes a space and a missing zone).
  const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
  ajv.addFormat("date-time", { type: "string", validate: (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)) });
  const intRange = (min: number, max: number) => ({ type: "number" as const, validate: (n: number) => Number.isInteger(n) && n >= min && n <= max });
  ajv.addFormat("uint8", intRange(0, 255));
  ajv.addFormat("int16", intRange(-32768, 32767));
  ajv.addFormat("uint32", intRange(0, 2 ** 32 - 1));
  ajv.addFormat("json", {
    type: "string",
    validate: (s: string) => {
      try {
        JSON.parse(s);
        return true;
      } catch {
        return false;
      }
    },
  });
  for (const f of ["ISO8601", "application/json"]) ajv.addFormat(f, true);
  ajv.addSchema({ components: toJsonSchema(spec.components) }, "openmeter");
  const ops = new Map<string, Operation>();
  for (const [path, item] of Object.entries<Json>(spec.paths))
    for (const [method, op] of Object.entries<Json>(item)) if (op?.operationId) ops.set(op.operationId, { id: op.operationId, method: method.toUpperCase(), path, responses: op.responses });
  return { ajv, ops };
}

/** A readable failure: operation, status, each offending property path and the body. */
function report(op: string, status: number, errors: ErrorObject[], body: Json) {
  const lines = errors.map((e) => `  ${e.instancePath || "(root)"}: ${e.message}${e.keyword === "additionalProperties" || e.keyword === "enum" ? ` ${JSON.stringify(e.params)}` : ""}`);
  return `${op} ${status}: the body does not validate against the spec\n${[...new Set(lines)].join("\n")}\nbody: ${JSON.stringify(body, null, 2)}`;
}

describe("OpenMeter response schemas, against npm run serve", () => {
  const { ajv, ops } = loadSpec();
  const compiled = new Map<string, ValidateFunction>();
  const called = new Set<string>();
  let gw: Gateway;
  let rx: Receiver;
  let served: string[] = [];

  const HOUR = 3_600_000;
  const from = new Date(Math.floor(Date.now() / HOUR) * HOUR - HOUR).toISOString();
  const earlier = new Date(Date.now() - 2 * 60_000).toISOString();

  /**
   * Calls an operation by its operationId (path parameters filled in order), checks that the spec
   * declares the answer's status and content type for it, and validates the body. Returns the body.
   */
  async function call(opId: string, params: string[] = [], init: { query?: string; body?: unknown; headers?: Record<string, string>; status?: number } = {}) {
    const op = ops.get(opId);
    if (!op) throw new Error(`no operation ${opId} in the spec`);
    let i = 0;
    const path = op.path.replace(/\{[^}]+\}/g, () => encodeURIComponent(params[i++] ?? "")) + (init.query ? `?${init.query}` : "");
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined) headers["content-type"] ??= "application/json";
    const res = await gw.fetch(path, { method: op.method, headers, body: init.body === undefined ? undefined : typeof init.body === "string" ? init.body : JSON.stringify(init.body) });
    const text = await res.text();
    called.add(opId);
    if (init.status !== undefined) expect(res.status, `${opId} ${path}: ${text}`).toBe(init.status);
    else expect(res.status, `${opId} ${path}: ${text}`).toBeLessThan(300);
    if (DOCUMENTED[opId]?.status === res.status) return JSON.parse(text);
    const declared = op.responses[String(res.status)] ?? op.responses.default;
    expect(declared, `${opId}: status ${res.status} is not in the spec (${Object.keys(op.responses).join(", ")})`).toBeDefined();
    if (!declared!.content) {
      expect(text, `${opId} ${res.status}: the spec declares no body`).toBe("");
      return undefined;
    }
    const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
    const media = declared!.content[type];
    expect(media, `${opId} ${res.status}: content type ${type} is not in the spec (${Object.keys(declared!.content).join(", ")})`).toBeDefined();
    const body = type.endsWith("json") ? JSON.parse(text) : text;
    const key = `${opId} ${res.status} ${type}`;
    let validate = compiled.get(key);
    if (!validate) compiled.set(key, (validate = ajv.compile(toJsonSchema(media!.schema))));
    if (!validate(body)) expect.soft(false, report(opId, res.status, validate.errors ?? [], body)).toBe(true);
    return body;
  }

  beforeAll(async () => {
    rx = await startReceiver();
    gw = await startGateway({ runtime: "serve" });
    const doc = await (await gw.fetch("/openapi.json")).json();
    const routes = new Set<string>();
    for (const [p, item] of Object.entries<Json>(doc.paths)) for (const m of Object.keys(item)) routes.add(`${m.toUpperCase()} ${p}`);
    served = [...ops.values()].filter((o) => routes.has(`${o.method} ${o.path}`)).map((o) => o.id);
  });

  afterAll(async () => {
    await gw?.cleanup();
    await rx?.close();
  });

  const ids: Record<string, string> = {};

  it("meters, events and meter queries", async () => {
    const tokens = await call("createMeter", [], {
      status: 201,
      body: { slug: "tokens", name: "Tokens", description: "LLM tokens", eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model", tier: "$.tier" }, metadata: { team: "ai" } },
    });
    await call("createMeter", [], { status: 201, body: { slug: "calls", eventType: "call", aggregation: "COUNT" } });
    await call("createMeter", [], { status: 201, body: { slug: "users", eventType: "login", aggregation: "UNIQUE_COUNT", valueProperty: "$.user" } });
    await call("createMeter", [], { status: 201, body: { slug: "gauge", eventType: "gauge", aggregation: "LATEST", valueProperty: "$.n", eventFrom: earlier } });
    await call("createMeter", [], { status: 201, body: { slug: "doomed", eventType: "other", aggregation: "MAX", valueProperty: "$.n" } });
    await call("getMeter", ["tokens"]);
    await call("getMeter", [tokens.id]);
    await call("updateMeter", ["tokens"], { body: { name: "LLM tokens", groupBy: { model: "$.model", tier: "$.tier" } } });
    await call("listMeters");
    await call("listMeters", [], { query: "page=1&pageSize=2" });
    await call("deleteMeter", ["doomed"], { status: 204 });
    await call("listMeters", [], { query: "includeDeleted=true" });

    const events = [
      { specversion: "1.0", id: "e1", type: "prompt", source: "schemas", subject: "acme", time: earlier, data: { tokens: 100, model: "gpt-4", tier: "pro" } },
      { specversion: "1.0", id: "e2", type: "prompt", source: "schemas", subject: "acme", time: earlier, data: { tokens: 40, model: "o3", tier: "free" } },
      { specversion: "1.0", id: "e3", type: "call", source: "schemas", subject: "acme", time: earlier },
      { specversion: "1.0", id: "e4", type: "login", source: "schemas", subject: "bystander", time: earlier, data: { user: "u1" } },
      { specversion: "1.0", id: "e5", type: "login", source: "schemas", subject: "bystander", data: { user: "u2" } },
      { specversion: "1.0", id: "e6", type: "prompt", source: "schemas", subject: "bystander", time: earlier, data: { tokens: 25 } },
      { specversion: "1.0", id: "e7", type: "gauge", source: "schemas", subject: "acme", time: earlier, data: { n: 7.5 } },
    ];
    await call("ingestEvents", [], { status: 202, body: events, headers: { "content-type": "application/cloudevents-batch+json" } });
    await call("ingestEvents", [], { status: 202, body: { specversion: "1.0", id: "e9", type: "call", source: "schemas", subject: "acme" }, headers: { "content-type": "application/cloudevents+json" } });

    await call("listEvents", [], { query: `subject=acme&from=${encodeURIComponent(from)}` });
    await call("listEvents", [], { query: "subject=acme&id=e1" });
    await call("listEvents", [], { query: "subject=bystander" });

    const q = `from=${encodeURIComponent(from)}`;
    await call("queryMeter", ["tokens"], { query: `${q}&subject=acme&windowSize=HOUR&groupBy=model` });
    await call("queryMeter", ["tokens"], { query: `${q}&subject=acme&filterGroupBy[model]=gpt-4` });
    await call("queryMeter", ["tokens"], { query: `${q}&subject=acme`, headers: { accept: "text/csv" } });
    await call("queryMeter", ["users"], { query: `${q}&subject=bystander&windowSize=MINUTE&windowTimeZone=Europe/Budapest` });
    // Namespace-wide (no subject): answered from D1 snapshots.
    await call("queryMeter", ["tokens"], { query: `${q}&groupBy=subject` });
    await call("queryMeter", ["tokens"], { query: `${q}&groupBy=model&windowSize=DAY` });
    await call("queryMeter", ["gauge"], { query: `${q}&subject=acme&to=${encodeURIComponent(new Date().toISOString())}` });
    await call("queryMeterPost", ["tokens"], { body: { from, subject: ["acme"], groupBy: ["tier"], advancedMeterGroupByFilters: { model: { $like: "gpt%" } } } });
    await call("queryMeterPost", ["calls"], { body: { from, subject: ["acme"], windowSize: "DAY" } });
    await call("listMeterSubjects", ["tokens"]);
    await call("listMeterGroupByValues", ["tokens", "model"]);
  });

  it("subjects", async () => {
    await call("upsertSubject", [], {
      body: [
        { key: "acme", displayName: "Acme Inc.", metadata: { plan: "pro" }, stripeCustomerId: "cus_123", currentPeriodStart: "2025-01-01T00:00:00Z", currentPeriodEnd: "2025-02-01T00:00:00Z" },
        { key: "bystander" },
        { key: "passer" },
      ],
    });
    const acme = await call("getSubject", ["acme"]);
    await call("getSubject", [acme.id]);
    await call("getSubject", ["bystander"]);
    await call("listSubjects");
    await call("deleteSubject", ["passer"], { status: 204 });
  });

  it("features, entitlements, grants", async () => {
    await call("createFeature", [], { status: 201, body: { key: "tokens", name: "Tokens", meterSlug: "tokens", metadata: { kind: "llm" } } });
    await call("createFeature", [], {
      status: 201,
      body: { key: "pro_gpt4", name: "GPT-4 on pro", meterSlug: "tokens", meterGroupByFilters: { model: "gpt-4" }, advancedMeterGroupByFilters: { tier: { $eq: "pro" } } },
    });
    await call("createFeature", [], { status: 201, body: { key: "sso", name: "SSO" } });
    await call("createFeature", [], { status: 201, body: { key: "seats", name: "Seats" } });
    await call("createFeature", [], { status: 201, body: { key: "gauge", name: "Gauge", meterSlug: "gauge" } });
    await call("createFeature", [], { status: 201, body: { key: "users", name: "Users", meterSlug: "users" } });
    const old = await call("createFeature", [], { status: 201, body: { key: "old", name: "Old" } });
    await call("getFeature", ["tokens"]);
    await call("deleteFeature", [old.id], { status: 204 });
    await call("getFeature", [old.id]);
    await call("listFeatures");
    await call("listFeatures", [], { query: "includeArchived=true&meterSlug=tokens" });
    await call("listFeatures", [], { query: "page=1&pageSize=2" });

    const usagePeriod = { interval: "MONTH", anchor: new Date(Date.now() - 86_400_000).toISOString() };
    const metered = await call("createEntitlement", ["acme"], {
      status: 201,
      body: { type: "metered", featureKey: "tokens", usagePeriod, measureUsageFrom: "CURRENT_PERIOD_START", issueAfterReset: 1000, isSoftLimit: false, metadata: { source: "test" } },
    });
    await call("createEntitlement", ["acme"], { status: 201, body: { type: "metered", featureKey: "pro_gpt4", usagePeriod: { interval: "DAY" } } });
    await call("createEntitlement", ["acme"], { status: 201, body: { type: "boolean", featureKey: "sso" } });
    const seats = await call("createEntitlement", ["acme"], { status: 201, body: { type: "static", featureKey: "seats", config: JSON.stringify({ seats: 5 }) } });
    // Usage and no grants: an overage.
    const over = await call("createEntitlement", ["bystander"], { status: 201, body: { type: "metered", featureKey: "tokens", usagePeriod: { interval: "WEEK", anchor: usagePeriod.anchor }, measureUsageFrom: "CURRENT_PERIOD_START", isSoftLimit: true } });
    ids.over = over.id;
    await call("createEntitlement", ["bystander"], { status: 201, body: { type: "metered", featureKey: "users", usagePeriod: { interval: "P1D" }, measureUsageFrom: usagePeriod.anchor, issueAfterReset: 5, issueAfterResetPriority: 2, preserveOverageAtReset: true } });
    await call("createEntitlement", ["acme"], { status: 201, body: { type: "metered", featureKey: "gauge", usagePeriod: { interval: "YEAR" }, measureUsageFrom: "CURRENT_PERIOD_START", issueAfterReset: 10 } });

    for (const key of ["tokens", "pro_gpt4", "sso", "seats"]) await call("getEntitlementValue", ["acme", key]);
    await call("getEntitlementValue", ["acme", "tokens"], { query: `time=${encodeURIComponent(earlier)}` });
    for (const key of ["tokens", "users"]) await call("getEntitlementValue", ["bystander", key]);
    await call("getEntitlementValue", ["acme", "gauge"]);
    await call("getEntitlementHistory", ["bystander", over.id], { query: `windowSize=MINUTE&from=${encodeURIComponent(from)}` });
    await call("getEntitlement", ["acme", metered.id]);
    await call("getEntitlement", ["acme", seats.id]);
    await call("getEntitlementById", [metered.id]);
    await call("listSubjectEntitlements", ["acme"]);
    await call("listSubjectEntitlements", ["acme"], { query: "includeDeleted=true" });
    await call("listEntitlements");
    await call("listEntitlements", [], { query: "page=1&pageSize=2&entitlementType=metered" });
    await call("listEntitlements", [], { query: "limit=2&offset=1" });

    const grant = await call("createGrant", ["acme", "tokens"], {
      status: 201,
      body: { amount: 500, priority: 3, effectiveAt: new Date().toISOString(), expiration: { duration: "MONTH", count: 1 }, minRolloverAmount: 0, maxRolloverAmount: 100, metadata: { po: "42" } },
    });
    await call("createGrant", ["acme", metered.id], { status: 201, body: { amount: 50, effectiveAt: earlier, expiration: { duration: "DAY", count: 1 } } });
    // Expired by now.
    await call("createGrant", ["acme", "tokens"], { status: 201, body: { amount: 20, effectiveAt: new Date(Date.now() - 20 * HOUR).toISOString(), expiration: { duration: "HOUR", count: 2 } } });
    await call("createGrant", ["bystander", "tokens"], { status: 201, body: { amount: 10, effectiveAt: earlier, expiration: { duration: "YEAR", count: 1 }, priority: 255 } });
    await call("listEntitlementGrants", ["acme", "tokens"]);
    await call("listGrants");
    await call("listGrants", [], { query: "page=1&pageSize=10&subject=acme" });
    await call("voidGrant", [grant.id], { status: 204 });
    await call("listEntitlementGrants", ["acme", "tokens"], { query: "includeDeleted=true" });
    await call("listGrants", [], { query: "includeDeleted=true" });

    await call("getEntitlementHistory", ["acme", metered.id], { query: `windowSize=HOUR&from=${encodeURIComponent(from)}` });
    await call("getEntitlementHistory", ["acme", metered.id], { query: "windowSize=DAY" });
    await call("getEntitlementHistory", ["bystander", over.id], { query: `windowSize=HOUR&from=${encodeURIComponent(from)}&windowTimeZone=America/New_York` });
    await call("resetEntitlementUsage", ["acme", metered.id], { status: 204, body: { retainAnchor: true } });
    await call("getEntitlementValue", ["acme", "tokens"]);

    const replaced = await call("overrideEntitlement", ["acme", "seats"], { status: 201, body: { type: "static", featureKey: "seats", config: JSON.stringify({ seats: 10 }) } });
    await call("deleteEntitlement", ["acme", replaced.id], { status: 204 });
    await call("listSubjectEntitlements", ["acme"], { query: "includeDeleted=true" });
    await call("listEntitlements", [], { query: "page=1&pageSize=100" });
  });

  it("notification channels, rules and events (a threshold crossing, a failing receiver, a reset)", async () => {
    rx.behave("failing", () => ({ status: 500 }));
    const channel = await call("createNotificationChannel", [], { status: 201, body: { type: "WEBHOOK", name: "hooks", url: rx.url("schemas"), signingSecret: rx.secret, customHeaders: { "x-team": "ai" }, metadata: { env: "test" } } });
    await call("updateNotificationChannel", [channel.id], { body: { type: "WEBHOOK", name: "renamed", url: rx.url("schemas"), signingSecret: rx.secret, disabled: false } });
    await call("getNotificationChannel", [channel.id]);
    const failing = await call("createNotificationChannel", [], { status: 201, body: { type: "WEBHOOK", name: "failing", url: rx.url("failing") } });
    const spare = await call("createNotificationChannel", [], { status: 201, body: { type: "WEBHOOK", name: "spare", url: rx.url("spare") } });
    await call("listNotificationChannels");

    const rule = await call("createNotificationRule", [], {
      status: 201,
      body: { type: "entitlements.balance.threshold", name: "half", channels: [channel.id, failing.id], features: ["tokens"], thresholds: [{ type: "usage_value", value: 500 }] },
    });
    await call("updateNotificationRule", [rule.id], {
      body: { type: "entitlements.balance.threshold", name: "60 percent", channels: [channel.id, failing.id], features: ["tokens"], thresholds: [{ type: "usage_percentage", value: 60 }, { type: "balance_value", value: 10 }] },
    });
    const reset = await call("createNotificationRule", [], { status: 201, body: { type: "entitlements.reset", name: "resets", channels: [spare.id], metadata: { owner: "billing" } } });
    const disabled = await call("createNotificationRule", [], { status: 201, body: { type: "entitlements.reset", name: "off", channels: [spare.id], disabled: true } });
    await call("getNotificationRule", [rule.id]);
    await call("getNotificationRule", [reset.id]);
    await call("listNotificationRules");
    await call("listNotificationRules", [], { query: "feature=tokens&includeDisabled=true" });
    await call("testNotificationRule", [rule.id], { status: 201 });
    await call("testNotificationRule", [reset.id], { status: 201 });

    // Usage was reset to 0 of 1000: 650 tokens cross 60 %.
    const crossing = [{ specversion: "1.0", id: "e8", type: "prompt", source: "schemas", subject: "acme", time: new Date().toISOString(), data: { tokens: 650, model: "o3", tier: "free" } }];
    await call("ingestEvents", [], { status: 202, body: crossing, headers: { "content-type": "application/cloudevents-batch+json" } });
    expect(await rx.waitFor((d) => d.name === "schemas" && d.payload?.type === "entitlements.balance.threshold", 20_000), "no threshold webhook").not.toBeNull();
    expect(await rx.waitFor((d) => d.name === "failing", 20_000), "no attempt at the failing channel").not.toBeNull();
    await call("resetEntitlementUsage", ["bystander", ids.over!], { status: 204, body: {} });
    expect(await rx.waitFor((d) => d.name === "spare" && d.payload?.type === "entitlements.reset", 20_000), "no reset webhook").not.toBeNull();

    // Until D1's mirror shows both deliveries settled (one SUCCESS, one waiting to retry) and the reset.
    const deadline = Date.now() + 20_000;
    let real: Json[] = [];
    const settled = (e: Json) => e.deliveryStatus.length > 0 && e.deliveryStatus.every((d: Json) => d.attempts.length > 0);
    // The rule tests above are kept as events too, marked by their annotation.
    const tests = (items: Json[]) => items.filter((e: Json) => e.annotations?.["notification.rule.test"] === true);
    do {
      const listed = await call("listNotificationEvents");
      real = listed.items.filter((e: Json) => !tests([e]).length);
      if (real.length >= 2 && real.every(settled)) break;
      await new Promise((r) => setTimeout(r, 250));
    } while (Date.now() < deadline);
    expect(real.map((e: Json) => e.type).sort()).toEqual(["entitlements.balance.threshold", "entitlements.reset"]);
    const threshold = real.find((e: Json) => e.type === "entitlements.balance.threshold");
    const test = tests((await call("listNotificationEvents")).items)[0];
    expect(test, "a rule test's event is listed").toBeDefined();
    await call("getNotificationEvent", [test.id]);
    await call("resendNotificationEvent", [test.id], { status: 400 });
    await call("getNotificationEvent", [threshold.id]);
    await call("listNotificationEvents", [], { query: `rule=${rule.id}&subject=acme&feature=tokens&from=${encodeURIComponent(from)}&page=1&pageSize=5&order=ASC&orderBy=id` });
    await call("resendNotificationEvent", [threshold.id], { status: 202, body: { channels: [channel.id] } });
    await call("resendNotificationEvent", [threshold.id], { status: 202 });
    await call("getNotificationEvent", [threshold.id]);

    // Events outlive their rules and channels.
    await call("deleteNotificationRule", [rule.id], { status: 204 });
    await call("deleteNotificationRule", [disabled.id], { status: 204 });
    await call("deleteNotificationChannel", [failing.id], { status: 204 });
    await call("getNotificationChannel", [failing.id]);
    await call("getNotificationRule", [rule.id]);
    await call("listNotificationEvents", [], { query: "channel=" + failing.id });
    await call("listNotificationChannels", [], { query: "includeDisabled=true&page=1&pageSize=10" });
    await call("listNotificationRules", [], { query: "includeDisabled=true&page=1&pageSize=10" });
  });

  it("portal tokens and the portal query", async () => {
    const token = await call("createPortalToken", [], { body: { subject: "acme", allowedMeterSlugs: ["tokens"], expiresAt: new Date(Date.now() + 86_400_000).toISOString() } });
    await call("createPortalToken", [], { body: { subject: "bystander" } });
    await call("listPortalTokens");
    await call("listPortalTokens", [], { query: "limit=1" });
    const portal = { authorization: `Bearer ${token.token}` };
    await call("queryPortalMeter", ["tokens"], { query: `from=${encodeURIComponent(from)}&windowSize=HOUR&groupBy=model`, headers: portal });
    await call("queryPortalMeter", ["tokens"], { query: `from=${encodeURIComponent(from)}`, headers: { ...portal, accept: "text/csv" } });
    await call("invalidatePortalTokens", [], { status: 204, body: { id: token.id } });
    await call("invalidatePortalTokens", [], { status: 204, body: { subject: "bystander" } });
  });

  it("error answers: problem+json as the spec declares them", async () => {
    await call("getMeter", ["nope"], { status: 404 });
    await call("createMeter", [], { status: 400, body: { slug: "Bad Slug!", eventType: "x", aggregation: "SUM" } });
    await call("listMeters", [], { status: 401, headers: { authorization: "Bearer em_wrong" } });
    await call("getSubject", ["nobody"], { status: 404 });
    await call("getFeature", ["nope"], { status: 404 });
    await call("createEntitlement", ["acme"], { status: 409, body: { type: "boolean", featureKey: "sso" } });
    await call("getEntitlementValue", ["acme", "nope"], { status: 404 });
    await call("getNotificationRule", ["01ARZ3NDEKTSV4RRFFQ69G5FAV"], { status: 404 });
    await call("listEvents", [], { status: 400, query: "limit=0" });
    await call("listEvents", [], {});
    await call("queryMeter", ["tokens"], { status: 400, query: "windowSize=WEEK" });
    await call("ingestEvents", [], { status: 400, body: [{ specversion: "1.0", id: "bad", type: "call", source: "schemas", subject: "acme", data: "text" }], headers: { "content-type": "application/cloudevents-batch+json" } });
    await call("queryPortalMeter", ["tokens"], { status: 401, headers: { authorization: "Bearer em_portal_unknown" } });
    const token = await call("createPortalToken", [], { body: { subject: "acme", allowedMeterSlugs: ["calls"] } });
    await call("queryPortalMeter", ["tokens"], { status: 403, headers: { authorization: `Bearer ${token.token}` } });
    const grants = await call("listGrants", [], { query: "includeDeleted=true" });
    const voided = grants.find((g: Json) => g.voidedAt);
    await call("voidGrant", [voided.id], { status: 409 });
    await call("voidGrant", ["01ARZ3NDEKTSV4RRFFQ69G5FAV"], { status: 404 });
    await call("resendNotificationEvent", ["01ARZ3NDEKTSV4RRFFQ69G5FAV"], { status: 404 });
  });

  // Left as it is: the spec is inconsistent here. Subject keys are free strings (Subject.key,
  // SubjectUpsert.key, an event's subject), and the spec's own example key is "customer-1", but every
  // Entitlement*.subjectKey (entitlements, their webhook payloads) carries the pattern
  // ^[a-z0-9]+(?:_[a-z0-9]+)*$. edgemeter answers the key it was given; refusing such keys would break
  // clients that the pattern-free Subject schema allows. The cases above use keys that fit the pattern.
  it.skip("an entitlement of a subject whose key has a dash (the spec's own example, customer-1)", async () => {
    await call("createFeature", [], { status: 201, body: { key: "dash_demo", name: "Dash demo" } });
    await call("createEntitlement", ["customer-1"], { status: 201, body: { type: "boolean", featureKey: "dash_demo" } });
  });

  it("called every operation of the spec that edgemeter serves", () => {
    expect(served.length).toBeGreaterThan(0);
    const missing = served.filter((id) => !called.has(id));
    expect(missing).toEqual([]);
  });
});
