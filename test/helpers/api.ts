import { exports } from "cloudflare:workers";

export const ADMIN = "test-admin-key";

export interface Call {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

/** One request through the real Worker entry point (workerd), as a client would send it. */
export async function api(method: string, path: string, opts: { body?: unknown; raw?: string; key?: string | null; type?: string; headers?: Record<string, string> } = {}): Promise<Call> {
  const headers: Record<string, string> = { ...opts.headers };
  const key = opts.key === undefined ? ADMIN : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers["content-type"] = opts.type ?? "application/json";
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
