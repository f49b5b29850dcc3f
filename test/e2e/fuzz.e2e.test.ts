// A seeded, generated sweep of every operation in the gateway's own GET /openapi.json against a real
// `npm run serve`: valid baselines, then mutated bodies, query strings, path parameters, methods and
// credentials. Every answer must be < 500, every 4xx problem+json with `status` equal to the HTTP
// status; a mutation the schema (or README "Hostile input") forbids must be refused with its precise
// status; refused requests must leave every definition, total and entitlement as it was; and at the end
// the meters hold exactly the events that were acknowledged. 2xx answers must match the documented
// schema; keys named after Object.prototype members must be answered as any other key.
// FUZZ_SEED=<n> runs another sweep; FUZZ_VERBOSE=1 lists the mutated requests that were accepted
// (valid input, or worth a look). Beyond the hand-written corpus in test/http/hostile-corpus.ts:
// each defect found here got a deterministic case there or in the route's test file.
//
// The file in reading order, one suite whose parts share the gateway, the ledger and the failures list
// (each part starts at a "// ----" line): sending and judging (one request, its expected status, the
// problem+json and schema checks); what the sweep sends (the ledger of acknowledged events, a valid
// baseline per operation); the state a refused request must not change; setup; the sweep (`plan`: an
// operation's refusals and other mutations); the two tests. The mutations themselves are in
// fuzz-gen.ts, the reading of the OpenAPI document and its schema checks in fuzz-schema.ts, putting a
// request on the wire exactly as built in fuzz-transport.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type Gateway } from "./harness.mjs";
import { startReceiver, type Receiver } from "./webhook-receiver.mjs";
import { bodyMutations, dateTexts, decoded, malformedEscape, mapFields, nested, pathValues, prng, queryValues, type BodyMutation, type Expect } from "./fuzz-gen";
import { deref, firstInvalid, operations, valid, validQuery, type Operation, type Schema } from "./fuzz-schema";
import { transmit } from "./fuzz-transport";

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_611);
/** Values sampled per body field, query and path parameter: the sweep stays near 6,000 requests, ~30 s. */
const PER_FIELD = 5;
const QUERY_PER_PARAM = 7;
const PATH_PER_PARAM = 8;
/** A cap should the document grow: operations past it are skipped, and say so. */
const REQUEST_BUDGET = 8_000;

const S = "fz-subject";
const TYPE = "fz.call";
const COUNT = "fz_count";
const TOKENS = "fz_tokens";
const FEATURE = "fz_feature";
const DAY = 86_400_000;
const FROM = "2000-01-01T00:00:00Z";
const TO = "2100-01-01T00:00:00Z";

type Auth = "admin" | "read" | "ingest" | "portal" | "none" | "bogus";
interface Req {
  op: string;
  kind: string;
  method: string;
  /** Path and query, already percent-encoded as they go on the wire. */
  url: string;
  body?: string | Uint8Array;
  contentType?: string | null;
  headers?: Record<string, string>;
  auth: Auth;
  expect: Expect;
  /** Send the body as a stream, so it goes chunked, without Content-Length. */
  chunked?: boolean;
  /** The operation's documented answers, by status. */
  schema?: Record<string, Schema | undefined>;
  /** Remember this request's status under this name, for a later `sameAs`. */
  tag?: string;
}
interface Sent { req: Req; status: number; headers: Headers; text: string; json: any }

describe(`generated sweep of the OpenAPI document (seed ${SEED})`, () => {
  let gw: Gateway;
  let rx: Receiver;
  let doc: Schema;
  const rng = prng(SEED);
  let serial = 0;
  const unique = () => `fz${(++serial).toString(36)}`;
  const keys: Record<Exclude<Auth, "admin" | "none" | "bogus">, string> = { read: "", ingest: "", portal: "" };
  const fx: Record<string, string> = {};
  const failures: string[] = [];
  /** Failures counted by kind of request and what was wrong, so a run's summary fits on a screen. */
  const failureKinds = new Map<string, number>();
  const accepted: string[] = [];
  const notes: string[] = [];
  let requests = 0;
  let checkedAnswers = 0;
  const tagged = new Map<string, number>();
  /** Acknowledged events per subject: count on fz_count, sum of tokens on fz_tokens, count inside the entitlement's period. */
  const ledger = new Map<string, { count: number; tokens: number; now: number }>();

  // ------------------------------------------------------------ sending and judging

  const clip = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);
  const bodyText = (b: Req["body"]) => (b === undefined ? "" : typeof b === "string" ? b : new TextDecoder().decode(b));
  const describeReq = (r: Req) => `${r.method} ${clip(r.url, 200)} [${r.auth}${r.contentType === undefined ? "" : `, content-type ${JSON.stringify(r.contentType)}`}]\n    body: ${clip(bodyText(r.body))}`;

  async function raw(r: Req): Promise<Sent> {
    requests++;
    const token = r.auth === "admin" ? gw.adminKey : r.auth === "bogus" ? "em_bogus_key" : r.auth === "none" ? null : keys[r.auth];
    const body = r.body === undefined ? undefined : typeof r.body === "string" ? new TextEncoder().encode(r.body) : r.body;
    try {
      return { req: r, ...(await transmit(gw, { ...r, body }, token)) };
    } catch (err) {
      // A server may answer an oversized body early and close before reading it; the client then
      // fails writing (EPIPE, ECONNRESET). That is not a wrong answer. Anything else is.
      const cause = String((err as { cause?: { code?: string } }).cause?.code ?? err);
      if ((body?.length ?? 0) > 1 << 20) notes.push(`${r.op} — ${r.kind}: the connection closed while the body was sent (${cause})`);
      else failures.push(`${r.op} — ${r.kind}: no answer (${cause})\n    ${describeReq(r)}`);
      return { req: r, status: 0, headers: new Headers(), text: "", json: undefined };
    }
  }

  /** Sends and judges one request: the invariants of every answer, then the request's own expectation. */
  async function send(r: Req): Promise<Sent> {
    const s = await raw(r);
    if (s.status === 0) return s;
    const fail = (why: string) => {
      failures.push(`${r.op} — ${r.kind}: ${why}\n    ${describeReq(r)}\n    → ${s.status} ${s.headers.get("content-type")} ${clip(s.text, 400)}`);
      const kind = `${r.kind.replace(/ = .*| \(.*| with .*|a (read|ingest)-only/g, (m) => (m.startsWith("a ") ? "a wrong-scope" : ""))}: ${why} (got ${s.status})`;
      failureKinds.set(kind, (failureKinds.get(kind) ?? 0) + 1);
    };
    if (s.status >= 500) fail("a 5xx");
    if (s.status >= 400 && s.status < 500) {
      if (!s.headers.get("content-type")?.startsWith("application/problem+json")) fail("a 4xx that is not application/problem+json");
      else if (r.method !== "HEAD" && (s.json?.status !== s.status || typeof s.json.type !== "string" || typeof s.json.title !== "string" || typeof s.json.detail !== "string")) fail("a problem body without type/title/detail or with another status");
      if (s.status === 405 && !s.headers.get("allow")) fail("405 without Allow");
    }
    const e = r.expect;
    if (r.tag) tagged.set(r.tag, s.status);
    if (typeof e === "object" && "sameAs" in e && s.status !== tagged.get(e.sameAs)) fail(`expected ${tagged.get(e.sameAs)}, as the same request with an ordinary key`);
    if (e === "ok" && (s.status < 200 || s.status > 299)) fail("the valid baseline was not answered 2xx");
    if (e === "refuse" && s.status < 400) fail("schema-invalid input was accepted");
    if (typeof e === "object" && "status" in e && s.status !== e.status) fail(`expected ${e.status}`);
    if (e === "any" && s.status < 300 && r.kind !== "baseline") accepted.push(`${r.op} — ${r.kind} → ${s.status}`);
    // An answer the document describes must have the documented shape (clients generated from it rely on that).
    const documented = r.schema?.[String(s.status)];
    if (documented && s.status < 300) checkedAnswers++;
    if (s.status < 300 && documented && r.method !== "HEAD" && s.headers.get("content-type")?.startsWith("application/json") && !valid(doc, documented, s.json)) {
      const where = firstInvalid(doc, documented, s.json);
      fail(`the ${s.status} answer does not match the documented schema${where ? ` (at ${where})` : ""}`);
    }
    return s;
  }

  /** An admin call the sweep relies on (fixtures, sacrificial resources): must succeed. */
  async function must(method: string, url: string, body?: unknown): Promise<any> {
    const s = await raw({ op: "setup", kind: "setup", method, url, body: body === undefined ? undefined : JSON.stringify(body), auth: "admin", expect: "ok" });
    if (s.status >= 300) throw new Error(`setup ${method} ${url}: ${s.status} ${s.text}`);
    return s.json;
  }

  // ------------------------------------------------------------ what the sweep sends

  const event = (subject = S, over: Record<string, unknown> = {}) => ({ specversion: "1.0", id: `fz-ev-${unique()}`, source: "fuzz", type: TYPE, subject, time: new Date().toISOString(), data: { tokens: 3, model: "m1" }, ...over });

  /** Counts what an acknowledged ingest or check stored (ids are unique, so nothing is a duplicate). */
  function record(events: any[], indexes: number[]) {
    for (const i of indexes) {
      const e = events[i];
      if (e?.type !== TYPE || typeof e.subject !== "string") continue;
      const row = ledger.get(e.subject) ?? { count: 0, tokens: 0, now: 0 };
      row.count++;
      const v = e.data?.tokens;
      row.tokens += typeof v === "number" ? v : Number(v);
      // The entitlement counts from its period start (setup). Edge times the sweep sends are either outside
      // the retention window (listed as rejected, never here) or within minutes of now.
      if (e.time === null || e.time === undefined || Date.parse(e.time) > Date.now() - DAY) row.now++;
      ledger.set(e.subject, row);
    }
  }
  function ledgerHook(r: Req, s: Sent) {
    // Status 0: no answer (an oversized body cut off, see send); the final totals check still sees
    // anything such a request stored.
    if (s.status < 200 || s.status >= 300 || r.body === undefined) return;
    let body: any;
    try {
      body = JSON.parse(bodyText(r.body).replace(/^\uFEFF/, ""));
    } catch {
      return;
    }
    if (r.url === "/api/v1/events") {
      const h = r.headers ?? {};
      const fromHeaders = () => ({ type: decoded(h["ce-type"] ?? ""), subject: decoded(h["ce-subject"] ?? ""), time: h["ce-time"] && decoded(h["ce-time"]), data: body });
      const list = h["ce-specversion"] ? [fromHeaders()] : Array.isArray(body) ? body : [body];
      const rejected = new Set<number>((s.json?.rejected ?? []).map((x: any) => x.index));
      if (s.json?.duplicates) notes.push(`unexpected duplicates in ${describeReq(r)} → ${s.text}`);
      const stored = list.map((_, i) => i).filter((i) => !rejected.has(i));
      if (stored.length !== s.json?.accepted) failures.push(`ingest answered accepted ${s.json?.accepted}, but ${stored.length} events were neither rejected nor duplicates\n    ${describeReq(r)}\n    → ${s.text}`);
      record(list, stored);
    } else if (r.url === "/api/v1/check" && body?.event && s.json?.allowed === true && !s.json.duplicate) {
      record([body.event], [0]);
    }
  }

  interface Baseline { params?: Record<string, string>; query?: Record<string, string | string[]>; body?: unknown; contentType?: string; auth?: Auth }
  const ENT = (over: Record<string, unknown> = {}) => ({ type: "metered", featureKey: FEATURE, usagePeriod: { interval: "MONTH" }, issueAfterReset: 10, ...over });
  const RULE = () => ({ type: "entitlements.balance.threshold", name: `rule ${unique()}`, channels: [fx.channel], thresholds: [{ type: "usage_value", value: 1e9 }], features: [FEATURE] });
  const CHANNEL = () => ({ type: "WEBHOOK", name: `channel ${unique()}`, url: rx.url("fz-new"), customHeaders: { "x-fuzz": "1" } });
  const GRANT = () => ({ amount: 5, priority: 3, effectiveAt: new Date().toISOString(), expiration: { duration: "DAY", count: 1 } });
  /** Valid requests per operation; a function so each call can make fresh names or a resource to delete. */
  const baselines: Record<string, () => Baseline | Promise<Baseline>> = {
    "POST /api/v1/keys": () => ({ body: { name: `key ${unique()}`, scopes: ["read"] } }),
    "GET /api/v1/keys": () => ({}),
    "DELETE /api/v1/keys/{id}": async () => ({ params: { id: (await must("POST", "/api/v1/keys", { name: "doomed", scopes: ["read"] })).id } }),
    "POST /api/v1/events": () => ({ body: event(), contentType: "application/cloudevents+json" }),
    "GET /api/v1/events": () => ({ query: { subject: S, limit: "10", from: new Date(Date.now() - DAY).toISOString() } }),
    "GET /api/v1/meters": () => ({ query: { page: "1", pageSize: "10", orderBy: "name" } }),
    "POST /api/v1/meters": () => ({ body: { slug: `fz_m_${unique()}`, name: "M", eventType: "fz.other", aggregation: "SUM", valueProperty: "$.v", groupBy: { g: "$.g" } } }),
    "GET /api/v1/meters/{meterIdOrSlug}": () => ({ params: { meterIdOrSlug: COUNT } }),
    "PUT /api/v1/meters/{meterIdOrSlug}": () => ({ params: { meterIdOrSlug: "fz_put" }, body: { name: "Put", description: "d", groupBy: { a: "$.a" } } }),
    "DELETE /api/v1/meters/{meterIdOrSlug}": async () => ({ params: { meterIdOrSlug: (await must("POST", "/api/v1/meters", { slug: `fz_del_${unique()}`, eventType: "fz.del", aggregation: "COUNT" })).slug } }),
    "GET /api/v1/meters/{meterIdOrSlug}/query": () => ({ params: { meterIdOrSlug: COUNT }, query: { subject: S, windowSize: "DAY", from: new Date(Date.now() - 2 * DAY).toISOString(), groupBy: "model" } }),
    "POST /api/v1/meters/{meterIdOrSlug}/query": () => ({ params: { meterIdOrSlug: TOKENS }, body: { subject: [S], windowSize: "DAY", groupBy: ["model"], from: new Date(Date.now() - 2 * DAY).toISOString() } }),
    "GET /api/v1/meters/{meterIdOrSlug}/subjects": () => ({ params: { meterIdOrSlug: COUNT }, query: { from: FROM } }),
    "GET /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values": () => ({ params: { meterIdOrSlug: COUNT, groupByKey: "model" }, query: { from: FROM } }),
    "GET /api/v1/subjects": () => ({ query: { limit: "10" } }),
    // Three upserts: the mutation goes into the last, so a write item by item would leave the first two.
    "POST /api/v1/subjects": () => ({ body: [0, 1, 2].map(() => ({ key: `fz-subj-${unique()}`, displayName: "D", metadata: { a: "b" }, currentPeriodStart: "2026-01-01T00:00:00Z", currentPeriodEnd: "2026-02-01T00:00:00Z" })) }),
    "GET /api/v1/subjects/{subjectIdOrKey}": () => ({ params: { subjectIdOrKey: S } }),
    "DELETE /api/v1/subjects/{subjectIdOrKey}": async () => ({ params: { subjectIdOrKey: (await must("POST", "/api/v1/subjects", [{ key: `fz-doomed-${unique()}` }]))[0].key } }),
    "POST /api/v1/features": () => ({ body: { key: `fz_f_${unique()}`, name: "F", meterSlug: COUNT, meterGroupByFilters: { model: "m1" }, metadata: { a: "b" } } }),
    "GET /api/v1/features": () => ({ query: { limit: "10", meterSlug: COUNT } }),
    "GET /api/v1/features/{featureId}": () => ({ params: { featureId: FEATURE } }),
    "DELETE /api/v1/features/{featureId}": async () => ({ params: { featureId: (await must("POST", "/api/v1/features", { key: `fz_doomed_${unique()}`, name: "doomed" })).id } }),
    "POST /api/v1/subjects/{subjectIdOrKey}/entitlements": () => ({ params: { subjectIdOrKey: `fz-new-${unique()}` }, body: ENT() }),
    "GET /api/v1/subjects/{subjectIdOrKey}/entitlements": () => ({ params: { subjectIdOrKey: S }, query: { includeDeleted: "true" } }),
    "PUT /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/override": () => ({ params: { subjectIdOrKey: "fz-side", entitlementIdOrFeatureKey: FEATURE }, body: ENT({ issueAfterReset: 20 }) }),
    "GET /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}": () => ({ params: { subjectIdOrKey: S, entitlementId: fx.entitlement! } }),
    "DELETE /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}": async () => {
      const subject = `fz-del-${unique()}`;
      return { params: { subjectIdOrKey: subject, entitlementId: (await must("POST", `/api/v1/subjects/${subject}/entitlements`, ENT())).id } };
    },
    "GET /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value": () => ({ params: { subjectIdOrKey: S, entitlementIdOrFeatureKey: FEATURE }, query: { time: new Date().toISOString() } }),
    "POST /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/reset": () => ({ params: { subjectIdOrKey: "fz-reset", entitlementId: fx.resetEntitlement! }, body: { retainAnchor: true } }),
    "GET /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/history": () => ({ params: { subjectIdOrKey: S, entitlementId: fx.entitlement! }, query: { windowSize: "DAY", windowTimeZone: "Europe/Berlin" } }),
    "GET /api/v1/entitlements": () => ({ query: { subject: S, feature: FEATURE, entitlementType: "metered", page: "1", pageSize: "10" } }),
    "GET /api/v1/entitlements/{entitlementId}": () => ({ params: { entitlementId: fx.entitlement! } }),
    "POST /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants": () => ({ params: { subjectIdOrKey: "fz-grant", entitlementIdOrFeatureKey: FEATURE }, body: GRANT() }),
    "GET /api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants": () => ({ params: { subjectIdOrKey: S, entitlementIdOrFeatureKey: FEATURE }, query: { includeDeleted: "true", orderBy: "createdAt" } }),
    "GET /api/v1/grants": () => ({ query: { subject: S, page: "1", pageSize: "10" } }),
    "DELETE /api/v1/grants/{grantId}": async () => ({ params: { grantId: (await must("POST", `/api/v1/subjects/fz-grant/entitlements/${FEATURE}/grants`, GRANT())).id } }),
    "POST /api/v1/check": () => ({ body: { subject: S, feature: FEATURE, event: event() } }),
    "GET /api/v1/notification/channels": () => ({ query: { pageSize: "10", includeDisabled: "true" } }),
    "POST /api/v1/notification/channels": () => ({ body: CHANNEL() }),
    "GET /api/v1/notification/channels/{channelId}": () => ({ params: { channelId: fx.channel! } }),
    "PUT /api/v1/notification/channels/{channelId}": () => ({ params: { channelId: fx.putChannel! }, body: { type: "WEBHOOK", name: "put", url: rx.url("fz-put"), disabled: false } }),
    "DELETE /api/v1/notification/channels/{channelId}": async () => ({ params: { channelId: (await must("POST", "/api/v1/notification/channels", CHANNEL())).id } }),
    "GET /api/v1/notification/rules": () => ({ query: { pageSize: "10", channel: fx.channel!, feature: FEATURE } }),
    "POST /api/v1/notification/rules": () => ({ body: RULE() }),
    "GET /api/v1/notification/rules/{ruleId}": () => ({ params: { ruleId: fx.rule! } }),
    "PUT /api/v1/notification/rules/{ruleId}": () => ({ params: { ruleId: fx.putRule! }, body: RULE() }),
    "DELETE /api/v1/notification/rules/{ruleId}": async () => ({ params: { ruleId: (await must("POST", "/api/v1/notification/rules", RULE())).id } }),
    "POST /api/v1/notification/rules/{ruleId}/test": () => ({ params: { ruleId: fx.rule! } }),
    "GET /api/v1/notification/events": () => ({ query: { pageSize: "10", subject: S, from: FROM } }),
    "GET /api/v1/notification/events/{eventId}": () => ({ params: { eventId: fx.notificationEvent! } }),
    "POST /api/v1/notification/events/{eventId}/resend": () => ({ params: { eventId: fx.notificationEvent! }, body: {} }),
    "POST /api/v1/portal/tokens": () => ({ body: { subject: S, allowedMeterSlugs: [COUNT] } }),
    "GET /api/v1/portal/tokens": () => ({ query: { limit: "10" } }),
    "POST /api/v1/portal/tokens/invalidate": () => ({ body: { subject: "fz-portal-nobody" } }),
    "GET /api/v1/portal/meters/{meterSlug}/query": () => ({ params: { meterSlug: COUNT }, query: { windowSize: "DAY", from: FROM }, auth: "portal" }),
    "GET /api/v1/debug/subjects/{subject}/storage": () => ({ params: { subject: S } }),
  };

  /** Ids of each resource kind, for "an id of another kind" in path parameters. */
  const idsByKind = () => ({ meter: [fx.meterId!, COUNT], feature: [fx.featureId!, FEATURE], entitlement: [fx.entitlement!], grant: [fx.grant!], channel: [fx.channel!], rule: [fx.rule!], key: [fx.readKeyId!], event: [fx.notificationEvent!] });
  /** The kinds a path parameter names; subject parameters take any key, so no id is foreign to them. */
  const kindsOf: Record<string, string[] | null> = {
    // Every entitlement route resolves its id as OpenMeter's entitlementIdOrFeatureKey (findEntitlement): a feature id names its live entitlement.
    id: ["key"], meterIdOrSlug: ["meter"], meterSlug: ["meter"], featureId: ["feature"], entitlementId: ["entitlement", "feature"],
    entitlementIdOrFeatureKey: ["entitlement", "feature"], grantId: ["grant"], channelId: ["channel"], ruleId: ["rule"], eventId: ["event"],
    groupByKey: null, subjectIdOrKey: null, subject: null,
  };

  const scopeOf = (op: Operation): "admin" | "read" | "ingest" | "portal" => {
    if (op.path === "/api/v1/portal/meters/{meterSlug}/query") return "portal";
    if (op.path.startsWith("/api/v1/keys") || op.path.startsWith("/api/v1/portal/") || op.path.startsWith("/api/v1/debug/")) return "admin";
    if (op.key === "POST /api/v1/events" || op.key === "POST /api/v1/check") return "ingest";
    if (op.method === "GET" || op.key === "POST /api/v1/meters/{meterIdOrSlug}/query") return "read";
    return "admin";
  };

  function urlOf(op: Operation, params: Record<string, string>, query: Record<string, string | string[]> = {}, rawQuery: string[] = []): string {
    const path = op.path.replace(/\{(\w+)\}/g, (_, n) => params[`\u0000raw:${n}`] ?? encodeURIComponent(params[n] ?? `missing-${n}`));
    const qs = [...Object.entries(query).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${encodeURIComponent(k)}=${encodeURIComponent(x)}`)), ...rawQuery];
    return qs.length ? `${path}?${qs.join("&")}` : path;
  }

  async function baselineOf(op: Operation): Promise<Baseline> {
    const b = baselines[op.key];
    if (b) return b();
    // An operation added after this table: path parameters from the fixtures, no query, an empty body.
    notes.push(`no baseline for ${op.key}: sent with fixture ids and {} (add one to the table)`);
    return { params: Object.fromEntries(op.params.filter((p) => p.in === "path").map((p) => [p.name, fx[p.name] ?? S])), body: op.body ? {} : undefined };
  }

  const reqOf = (op: Operation, b: Baseline, kind: string, expect: Expect, over: Partial<Req> = {}): Req => ({
    op: op.key,
    schema: op.responses,
    kind,
    method: op.method,
    url: urlOf(op, b.params ?? {}, b.query),
    body: b.body === undefined ? undefined : JSON.stringify(b.body),
    contentType: b.body === undefined ? undefined : b.contentType,
    auth: b.auth ?? "admin",
    expect,
    ...over,
  });

  async function sendAndRecord(r: Req) {
    const s = await send(r);
    ledgerHook(r, s);
    return s;
  }

  // ------------------------------------------------------------ state a refused request must not change

  async function state() {
    const get = async (url: string) => {
      const s = await raw({ op: "state", kind: "state", method: "GET", url, auth: "admin", expect: "ok" });
      return s.status === 200 ? s.json : { status: s.status, text: s.text };
    };
    const out: Record<string, unknown> = {};
    for (const url of [
      "/api/v1/meters?includeDeleted=true",
      "/api/v1/features?includeArchived=true&limit=1000",
      "/api/v1/notification/channels?includeDisabled=true&includeDeleted=true&pageSize=1000",
      "/api/v1/notification/rules?includeDisabled=true&includeDeleted=true&pageSize=1000",
      "/api/v1/subjects",
      "/api/v1/keys",
      "/api/v1/portal/tokens?limit=100",
      "/api/v1/grants?includeDeleted=true&limit=1000",
      `/api/v1/events?subject=${S}&limit=100`,
      `/api/v1/meters/${COUNT}/query?subject=${S}&from=${FROM}&to=${TO}`,
      `/api/v1/meters/${TOKENS}/query?subject=${S}&from=${FROM}&to=${TO}`,
      ...[S, "fz-side", "fz-reset", "fz-grant"].map((s) => `/api/v1/subjects/${s}/entitlements?includeDeleted=true`),
      // Not fz-grant's value: a grant accepted with an effectiveAt a minute ahead (an edge date the
      // mutations use) moves its balance when that minute comes, refused request or not. A grant
      // stored by a refused request shows in the grants list above.
      ...[S, "fz-side", "fz-reset"].map((s) => `/api/v1/subjects/${s}/entitlements/${FEATURE}/value`),
    ]) out[url] = await get(url);
    return out;
  }

  function diff(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
    return Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).map((k) => `${k}\n      before: ${clip(JSON.stringify(a[k]), 400)}\n      after:  ${clip(JSON.stringify(b[k]), 400)}`);
  }

  // ------------------------------------------------------------ setup

  beforeAll(async () => {
    rx = await startReceiver();
    gw = await startGateway({ runtime: "serve" });
    doc = await (await fetch(`${gw.baseUrl}/openapi.json`)).json();

    const count = await must("POST", "/api/v1/meters", { slug: COUNT, eventType: TYPE, aggregation: "COUNT", groupBy: { model: "$.model" } });
    fx.meterId = count.id;
    await must("POST", "/api/v1/meters", { slug: TOKENS, eventType: TYPE, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
    await must("POST", "/api/v1/meters", { slug: "fz_put", eventType: "fz.put", aggregation: "SUM", valueProperty: "$.v", groupBy: { a: "$.a" } });
    fx.featureId = (await must("POST", "/api/v1/features", { key: FEATURE, name: "Fuzz", meterSlug: COUNT })).id;
    await must("POST", "/api/v1/subjects", [{ key: S, displayName: "Fuzz subject" }]);
    fx.entitlement = (await must("POST", `/api/v1/subjects/${S}/entitlements`, ENT({ issueAfterReset: 1000 }))).id;
    fx.grant = (await must("POST", `/api/v1/subjects/${S}/entitlements/${FEATURE}/grants`, { ...GRANT(), amount: 100 })).id;
    for (const side of ["fz-side", "fz-grant"]) await must("POST", `/api/v1/subjects/${side}/entitlements`, ENT());
    fx.resetEntitlement = (await must("POST", "/api/v1/subjects/fz-reset/entitlements", ENT())).id;
    fx.channel = (await must("POST", "/api/v1/notification/channels", { type: "WEBHOOK", name: "fixture", url: rx.url("fz-fixture"), signingSecret: rx.secret })).id;
    fx.putChannel = (await must("POST", "/api/v1/notification/channels", CHANNEL())).id;
    fx.putRule = (await must("POST", "/api/v1/notification/rules", RULE())).id;
    // A threshold the first event crosses, so a notification event exists to read and resend.
    fx.rule = (await must("POST", "/api/v1/notification/rules", { ...RULE(), thresholds: [{ type: "usage_value", value: 1 }] })).id;
    const first = [event(), event(S, { data: { tokens: 4, model: "m2" } })];
    const ingest = await must("POST", "/api/v1/events", first);
    expect(ingest).toMatchObject({ accepted: 2, rejected: [] });
    record(first, [0, 1]);
    for (const scopes of [["read"], ["ingest"]] as const) {
      const k = await must("POST", "/api/v1/keys", { name: `fz ${scopes[0]}`, scopes });
      keys[scopes[0]] = k.key;
      if (scopes[0] === "read") fx.readKeyId = k.id;
    }
    keys.portal = (await must("POST", "/api/v1/portal/tokens", { subject: S })).token;
    for (let i = 0; i < 100 && !fx.notificationEvent; i++) {
      const list = await must("GET", "/api/v1/notification/events?pageSize=10");
      fx.notificationEvent = (list.items ?? list)[0]?.id;
      if (!fx.notificationEvent) await new Promise((r) => setTimeout(r, 200));
    }
    expect(fx.notificationEvent, "a notification event for the fixture rule").toBeTruthy();
  });

  afterAll(async () => {
    await gw?.cleanup();
    await rx?.close();
  });

  // ------------------------------------------------------------ the sweep

  /** Every request of one operation, split into those that must be refused and the rest. */
  async function plan(op: Operation, ops: Operation[]): Promise<{ refusals: Req[]; others: Req[] }> {
    const refusals: Req[] = [];
    const others: Req[] = [];
    const add = (r: Req) => (r.expect === "any" || r.expect === "ok" || (typeof r.expect === "object" && "sameAs" in r.expect) ? others : refusals).push(r);
    const base = await baselineOf(op);
    const known = Boolean(baselines[op.key]);
    const good: Expect = known ? "ok" : "any";
    add(reqOf(op, base, "baseline", good));
    // A DELETE that wrongly succeeded would leave the next request nothing to refuse: each gets its own target.
    const target = async () => (op.method === "DELETE" ? baselineOf(op) : base);

    // Credentials: none, unknown, malformed, a key without the scope, a portal token.
    const need = scopeOf(op);
    add(reqOf(op, await target(), "no Authorization", { status: 401 }, { auth: "none" }));
    add(reqOf(op, await target(), "an unknown key", { status: 401 }, { auth: "bogus" }));
    add(reqOf(op, await target(), "Basic instead of Bearer", { status: 401 }, { auth: "none", headers: { authorization: `Basic ${btoa(`x:${gw.adminKey}`)}` } }));
    add(reqOf(op, await target(), "two tokens after Bearer", { status: 401 }, { auth: "none", headers: { authorization: `Bearer ${gw.adminKey} ${gw.adminKey}` } }));
    add(reqOf(op, await target(), "a 6,000-character token", { status: 401 }, { auth: "none", headers: { authorization: `Bearer em_${"k".repeat(6000)}` } }));
    for (const auth of ["read", "ingest", "portal"] as const) {
      if (need === "portal") {
        if (auth !== "portal") add(reqOf(op, base, `an API key (${auth})`, { status: 401 }, { auth }));
      } else if (auth === "portal") add(reqOf(op, await target(), "a portal token", { status: 401 }, { auth }));
      else if (need !== auth) {
        add(reqOf(op, await target(), `a ${auth}-only key`, { status: 403 }, { auth }));
        // Without the scope the body is nobody's business: 403 whatever it holds, never 400, 413 or 415.
        if (op.body) for (const [kind, body, contentType] of badBodies(auth === "read" || need === "read")) add(reqOf(op, await target(), `a ${auth}-only key and ${kind}`, { status: 403 }, { auth, body, contentType }));
      } else add(reqOf(op, await baselineOf(op), `a ${auth}-only key`, good, { auth }));
    }

    // Methods the path does not answer: 405 with Allow; HEAD and OPTIONS must not fail either.
    const pathMethods = ops.filter((o) => o.path === op.path).map((o) => o.method);
    if (pathMethods[0] === op.method) {
      const unanswered = ["GET", "POST", "PUT", "DELETE", "PATCH"].filter((m) => !pathMethods.includes(m));
      for (const m of unanswered) {
        add(reqOf(op, base, `method ${m}`, { status: 405 }, { method: m, body: undefined, contentType: undefined, auth: "admin" }));
        // A method the path does not answer is 405 whatever the body: it is never read.
        const first = m === unanswered.find((x) => x !== "GET");
        if (m !== "GET") for (const [kind, body, contentType] of badBodies(first)) add(reqOf(op, base, `method ${m} with ${kind}`, { status: 405 }, { method: m, body, contentType, auth: "admin" }));
      }
      // Nor is a body sent to a path that does not exist; one a template matches is a 405.
      const url = `${urlOf(op, base.params ?? {})}/fz-no-such-path`;
      const expect: Expect = { status: ops.some((o) => templateOf(o.path).test(url)) ? 405 : 404 };
      for (const [kind, body, contentType] of badBodies(false)) add({ ...reqOf(op, base, `POST to an unknown path below it with ${kind}`, expect, { method: "POST", body, contentType, auth: "admin" }), url });
      if (!pathMethods.includes("DELETE")) for (const m of ["HEAD", "OPTIONS"]) add(reqOf(op, base, `method ${m}`, "any", { method: m, body: undefined, contentType: undefined }));
      add({ ...reqOf(op, base, "a trailing slash", "any"), url: urlOf(op, base.params ?? {}).replace(/(\?|$)/, "/$1") });
      add({ ...reqOf(op, base, "a doubled slash", "any"), url: urlOf(op, base.params ?? {}, base.query).replace("/v1/", "/v1//") });
    }
    if (op.method === "GET") for (const accept of ["text/csv", "application/xml", "*/*;q=0"]) add(reqOf(op, base, `Accept ${accept}`, "any", { headers: { accept } }));

    // Body mutations.
    if (op.body && base.body !== undefined) {
      for (const variant of bodyVariants(op)) {
        const make = bodyMutations(doc, variant.schema, () => structuredClone(variant.fresh().body), unique, rng, PER_FIELD);
        for (const m of make) {
          const b = await baselineOf(op);
          const mut: BodyMutation = m();
          add(reqOf(op, b, `body${variant.name}: ${mut.kind}`, mut.expect, { body: mut.text, contentType: mut.contentType === undefined ? variant.fresh().contentType : mut.contentType, headers: mut.headers }));
        }
      }
      // In map fields (metadata, group-by keys and filters, headers, event data), a key named after an
      // Object.prototype member is answered as an ordinary undeclared key is.
      for (const variant of bodyVariants(op)) {
        for (const [path, value] of mapFields(doc, variant.schema, variant.fresh().body)) {
          const withKey = (key: string) => {
            const body = structuredClone(variant.fresh().body) as Record<string, unknown>;
            body[path[0] as string] = Object.fromEntries([[key, value]]);
            return JSON.stringify(body);
          };
          const tag = `${op.key}${variant.name} ${path.join(".")}`;
          add({ ...reqOf(op, await baselineOf(op), `body${variant.name}: ${path.join(".")} with an ordinary undeclared key`, "any", { body: withKey("fzNoSuchKey"), contentType: variant.fresh().contentType }), tag });
          for (const key of ["constructor", "toString", "hasOwnProperty"]) {
            add(reqOf(op, await baselineOf(op), `body${variant.name}: ${path.join(".")} with the key ${key}`, { sameAs: tag }, { body: withKey(key), contentType: variant.fresh().contentType }));
          }
        }
      }
      // Sent chunked (no Content-Length): the same limits by another code path.
      add(reqOf(op, await baselineOf(op), "body: chunked", good, { chunked: true }));
      add(reqOf(op, await baselineOf(op), "body: chunked, over 1 MiB", { status: 413 }, { chunked: true, body: `{"pad":"${"p".repeat(1_100_000)}"}` }));
    } else if (op.method === "POST") {
      add(reqOf(op, base, "body: JSON junk on a route without a body", "any", { body: '{"x":', contentType: "application/json" }));
    }
    if (op.key === "POST /api/v1/events") for (const r of binaryMode(op)) add(r);

    // Query mutations: each parameter, a sample of odd values. A malformed escape is a 400 wherever it is.
    for (const p of op.params.filter((p) => p.in === "query")) {
      const dateLike = /^(from|to|time|at|ingestedAt(From|To))$/.test(p.name) || deref(doc, p.schema).format === "date-time";
      const dates = dateLike ? dateTexts().map(([k, d]) => [`date: ${k}`, [encodeURIComponent(d)]] as [string, string[]]) : [];
      for (const [kind, values] of [...rng.sample(queryValues(unique), QUERY_PER_PARAM), ...rng.sample(dates, QUERY_PER_PARAM)]) {
        const query = { ...base.query };
        delete query[p.name];
        const rawQuery = values.map((v) => `${encodeURIComponent(p.name)}=${v}`);
        const expect: Expect = values.some(malformedEscape) ? { status: 400 } : values.length === 1 && !validQuery(doc, p.schema, values.map(decoded)) ? "refuse" : "any";
        add({ ...reqOf(op, base, `query ${p.name} = ${kind}`, expect), url: urlOf(op, base.params ?? {}, query, rawQuery) });
      }
    }
    if (op.params.some((p) => p.in === "query")) add({ ...reqOf(op, base, "an unknown query parameter", "any"), url: urlOf(op, base.params ?? {}, base.query, ["fzUnknown=1"]) });
    // Object parameters are sent as name[key]=value (deepObject): keys that name Object.prototype
    // members, an empty key, nested brackets, unclosed ones.
    for (const p of op.params.filter((p) => p.in === "query" && deref(doc, p.schema).type === "object")) {
      for (const key of ["constructor", "toString", "hasOwnProperty", "__proto__", "", "model][0", "model", `${"k".repeat(300)}`]) {
        const raw = `${encodeURIComponent(p.name)}[${encodeURIComponent(key).replace(/%5D/g, "]")}]=x`;
        add({ ...reqOf(op, base, `query ${p.name}[${key.slice(0, 20)}]`, "any"), url: urlOf(op, base.params ?? {}, base.query, [raw]) });
      }
      add({ ...reqOf(op, base, `query ${p.name}[model (unclosed)`, "any"), url: urlOf(op, base.params ?? {}, base.query, [`${p.name}[model=x`]) });
    }

    // Path mutations: odd values and ids of other kinds; none names a resource of the parameter's kind.
    for (const p of op.params.filter((p) => p.in === "path")) {
      const kinds = kindsOf[p.name];
      const values = rng.sample(pathValues(unique), PATH_PER_PARAM);
      if (kinds) for (const [kind, ids] of Object.entries(idsByKind())) if (!kinds.includes(kind)) values.push([`a ${kind} id`, encodeURIComponent(ids[0]!)]);
      for (const [kind, v] of values) {
        const b = await target();
        const params = { ...b.params, [`\u0000raw:${p.name}`]: v };
        // A well-formed id of another kind is simply not found; one the parameter's schema forbids may be a 400.
        const foreign = kind.endsWith(" id") && validQuery(doc, p.schema, [decoded(v)]);
        const expect: Expect = malformedEscape(v) ? { status: 400 } : !kinds ? "any" : foreign ? { status: 404 } : "refuse";
        add({ ...reqOf(op, b, `path ${p.name} = ${kind}`, expect), url: urlOf(op, params, b.query) });
      }
    }
    return { refusals, others };
  }

  const BIG = `{"pad":"${"p".repeat(1_100_000)}"}`;
  /**
   * Bodies no route could take: they must not decide the answer where the route or the scope already
   * does. The one over 1 MiB only where asked: a megabyte per request is most of the sweep's time otherwise.
   */
  const badBodies = (big: boolean): [string, string, string | null][] => [
    ["malformed JSON", '{"x":', "application/json"],
    ["a text/plain body", "plain words", "text/plain"],
    ...(big ? [["a body over 1 MiB", BIG, "application/json"] as [string, string, string]] : []),
  ];
  const templateOf = (path: string) => new RegExp(`^${path.replace(/\{\w+\}/g, "[^/?]+")}(\\?|$)`);

  /** Bodies to mutate per operation: the baseline, and for ingest also a batch (its last event mutated). */
  function bodyVariants(op: Operation): { name: string; schema: Schema; fresh: () => Baseline }[] {
    const one = { name: "", schema: deref(doc, op.body!.schema), fresh: () => baselines[op.key]!() as Baseline };
    if (op.key !== "POST /api/v1/events") return [one];
    const batch = () => ({ body: [event(), event(), event()], contentType: "application/cloudevents-batch+json" });
    return [one, { name: " (batch)", schema: { type: "array", items: deref(doc, op.body!.schema) }, fresh: batch }];
  }

  /** CloudEvents binary mode: attributes as ce-* headers, generated from the Event schema's fields. */
  function binaryMode(op: Operation): Req[] {
    const schema = deref(doc, deref(doc, op.body!.schema));
    const headersOf = (e: Record<string, unknown>) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== "data").map(([k, v]) => [`ce-${k}`, encodeURIComponent(String(v))]));
    const r = (kind: string, expect: Expect, edit: (h: Record<string, string>) => void, body = '{"tokens":2,"model":"bin"}', contentType: string | null = "application/json"): Req => {
      const e = event();
      const headers = headersOf(e);
      edit(headers);
      return { op: op.key, kind: `binary mode: ${kind}`, method: "POST", url: "/api/v1/events", body, contentType, headers, auth: "admin", expect };
    };
    const out = [r("baseline", "ok", () => {})];
    for (const field of schema.required as string[]) {
      out.push(r(`ce-${field} missing`, "refuse", (h) => delete h[`ce-${field}`]));
      out.push(r(`ce-${field} empty`, "refuse", (h) => (h[`ce-${field}`] = "")));
      out.push(r(`ce-${field} %ZZ`, { status: 400 }, (h) => (h[`ce-${field}`] = "%ZZ")));
      out.push(r(`ce-${field} %ED%A0%80`, { status: 400 }, (h) => (h[`ce-${field}`] = "%ED%A0%80")));
    }
    out.push(r("ce-time not a date", "refuse", (h) => (h["ce-time"] = "yesterday")));
    out.push(r("ce-__proto__ attribute", "refuse", (h) => (h["ce-__proto__"] = "x")));
    out.push(r("data as text/plain", { status: 415 }, () => {}, "tokens=2", "text/plain"));
    out.push(r("data with 1e309", { status: 400 }, () => {}, '{"tokens":1e309}'));
    out.push(r("data nested 100 levels", { status: 400 }, () => {}, nested(100)));
    out.push(r("invalid JSON data", { status: 400 }, () => {}, '{"tokens":'));
    return out;
  }

  it("answers every generated request with a precise status, and refusals change nothing", async () => {
    const started = Date.now();
    // Reads first, all between two snapshots (a read must never write); then each write operation
    // with its refusals alone between two snapshots.
    const ops = operations(doc).sort((a, b) => Number(a.method !== "GET") - Number(b.method !== "GET"));
    expect(ops.length).toBeGreaterThan(40);
    const entitlementBefore = await must("GET", `/api/v1/subjects/${S}/entitlements/${FEATURE}/value`);
    const ledgerBefore = ledger.get(S)!.now;

    let readsBefore: Record<string, unknown> | null = await state();
    for (const op of ops) {
      if (requests > REQUEST_BUDGET) {
        notes.push(`request budget reached before ${op.key}`);
        break;
      }
      const { refusals, others } = await plan(op, ops);
      if (op.method === "GET") {
        for (const r of [...refusals, ...others]) await sendAndRecord(r);
        continue;
      }
      if (readsBefore) {
        const changed = diff(readsBefore, await state());
        if (changed.length) failures.push(`GET requests changed stored state:\n    ${changed.join("\n    ")}`);
        readsBefore = null;
      }
      const before = await state();
      for (const r of refusals) await sendAndRecord(r);
      const changed = diff(before, await state());
      if (changed.length) failures.push(`${op.key}: refused requests changed stored state:\n    ${changed.join("\n    ")}`);
      for (const r of others) await sendAndRecord(r);
    }

    // The main entitlement's usage moved by exactly the events acknowledged for it, and nothing else.
    const entitlementAfter = await must("GET", `/api/v1/subjects/${S}/entitlements/${FEATURE}/value`);
    const consumed = ledger.get(S)!.now - ledgerBefore;
    if (entitlementAfter.usage - entitlementBefore.usage !== consumed || entitlementBefore.balance - entitlementAfter.balance !== consumed) {
      failures.push(`entitlement value: ${consumed} events acknowledged, but ${JSON.stringify(entitlementBefore)} → ${JSON.stringify(entitlementAfter)}`);
    }

    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`fuzz seed ${SEED}: ${requests} requests over ${ops.length} operations in ${seconds} s; ${failures.length} failures; ${accepted.length} mutated requests accepted; ${checkedAnswers} answers checked against their documented schema`);
    if (process.env.FUZZ_VERBOSE) console.log(`accepted mutations (valid input, or worth a look):\n  ${accepted.join("\n  ")}`);
    if (notes.length) console.log(`notes:\n  ${notes.join("\n  ")}`);
    if (failures.length) {
      console.log(`failures by kind:\n${[...failureKinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${n} × ${k}`).join("\n")}`);
      console.log(`failures (the first 80):\n${failures.slice(0, 80).join("\n")}`);
    }
    expect(failures.length, `${failures.length} failures, printed above; the first:\n${failures[0]}`).toBe(0);
  });

  it("stores exactly the acknowledged events: totals per subject equal the ledger", async () => {
    expect(ledger.size).toBeGreaterThan(0);
    for (const [subject, row] of ledger) {
      const q = (meter: string) => must("GET", `/api/v1/meters/${meter}/query?subject=${encodeURIComponent(subject)}&from=${FROM}&to=${TO}`);
      const sum = (r: any) => r.data.reduce((a: number, x: any) => a + x.value, 0);
      expect(sum(await q(COUNT)), `events counted for ${subject}`).toBe(row.count);
      const tokens = sum(await q(TOKENS));
      expect(Math.abs(tokens - row.tokens), `tokens summed for ${subject}: ${tokens} vs ${row.tokens}`).toBeLessThanOrEqual(Math.abs(row.tokens) * 1e-12);
    }
  });
});
