import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";

export const ADMIN = "test-admin-key";

export interface Call {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

/**
 * One request through the real Worker entry point (workerd), as a client would send it.
 * `type: null` sends the body as bytes with no Content-Type at all (a string body would get text/plain).
 */
export async function api(method: string, path: string, opts: { body?: unknown; raw?: string; key?: string | null; type?: string | null; headers?: Record<string, string> } = {}): Promise<Call> {
  const headers: Record<string, string> = { ...opts.headers };
  const key = opts.key === undefined ? ADMIN : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | Uint8Array | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && opts.type === null) body = new TextEncoder().encode(body as string);
  else if (body !== undefined) headers["content-type"] = opts.type ?? "application/json";
  const res = await exports.default.fetch(new Request(`http://edgemeter.test${path}`, { method, headers, body }));
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

let seq = 0;
/** A unique, valid CloudEvent; fields can be overridden. */
export function event(over: Record<string, unknown> = {}): Record<string, unknown> {
  seq++;
  return { specversion: "1.0", id: `ev-${Date.now()}-${seq}-${Math.random().toString(36).slice(2)}`, source: "test", type: "prompt", subject: "customer-1", time: new Date().toISOString(), data: { tokens: 1 }, ...over };
}

export async function createMeter(def: Record<string, unknown>, key?: string): Promise<Call> {
  const res = await api("POST", "/api/v1/meters", { body: def, key });
  if (res.status !== 201) throw new Error(`meter create failed: ${res.status} ${res.text}`);
  return res;
}

export async function ingest(events: unknown[], opts: { key?: string; type?: string } = {}): Promise<Call> {
  return api("POST", "/api/v1/events", { body: events, type: opts.type ?? "application/cloudevents-batch+json", key: opts.key });
}

export async function queryMeter(slug: string, params: Record<string, string | string[]>, key?: string): Promise<Call> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) qs.append(k, x);
  return api("GET", `/api/v1/meters/${slug}/query?${qs}`, { key });
}

// ---- shared helpers for the http/ and customer/ suites ----

let unique = 0;
/** A name unique within the test file, valid both as a subject and as a meter slug. */
export function uid(prefix: string): string {
  unique++;
  return `${prefix}_${unique}_${Math.random().toString(36).slice(2, 8)}`;
}

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

/** UTC midnight `days` days before today's: a fixed, recent base for hand-computed windows. */
export function utcMidnight(daysAgo: number): number {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - daysAgo * DAY;
}

export const iso = (ms: number) => new Date(ms).toISOString();

/** Asserts an RFC 9457 problem answer with the given status and stable `code`. */
export function expectProblem(res: Call, status: number, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/problem+json");
  expect(res.body?.code, res.text).toBe(code);
}

/** Ingest that must succeed (202); returns the reply body. */
export async function ingestOk(events: unknown[], opts: { key?: string; type?: string } = {}): Promise<{ accepted: number; duplicates: number; rejected: { index: number; id: string; source: string; reason: string }[] }> {
  const res = await ingest(events, opts);
  expect(res.status, res.text).toBe(202);
  return res.body;
}

/** The query rows of a meter, asserting 200. */
export async function rows(slug: string, params: Record<string, string | string[]>, key?: string): Promise<any[]> {
  const res = await queryMeter(slug, params, key);
  expect(res.status, res.text).toBe(200);
  return res.body.data;
}

/** The sum of a subject's query values (0 when nothing was counted). */
export async function total(slug: string, subject: string, key?: string): Promise<number> {
  return (await rows(slug, { subject }, key)).reduce((a, r) => a + r.value, 0);
}

/** GET /api/v1/events for a subject, asserting 200. */
export async function listEvents(subject: string, key?: string, extra = ""): Promise<any[]> {
  const res = await api("GET", `/api/v1/events?subject=${encodeURIComponent(subject)}${extra}`, { key });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** Creates an API key with the ADMIN key (or `by`); returns the created record including its one-time `key`. */
export async function createKey(body: { name?: string; scopes: string[]; namespace?: string }, by?: string): Promise<{ id: string; key: string; namespace: string; prefix: string; scopes: string[] }> {
  const res = await api("POST", "/api/v1/keys", { body: { name: body.name ?? uid("key"), ...body }, key: by });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

/** The customer Durable Object stub for namespace + subject, named as src/customer/client.ts names it. */
export function customerStub(subject: string, namespace = "default") {
  return env.CUSTOMER.get(env.CUSTOMER.idFromName(JSON.stringify([namespace, subject])));
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
