import type { Context, MiddlewareHandler } from "hono";
import { createClient, EdgemeterError, type CheckEvent, type CheckResult, type ClientOptions } from "./index";

/**
 * Hono middleware that puts an edgemeter quota in front of a route: one atomic check-and-record per
 * request (POST /api/v1/check), so concurrent requests can never take a customer past a hard limit.
 *
 *   import { quota } from "edgemeter/quota";
 *   app.use("/v1/chat/*", quota({
 *     baseUrl: "https://meter.example.com",
 *     apiKey: env.EDGEMETER_KEY,               // a key with the `ingest` scope
 *     subject: (c) => c.get("user").customerId,
 *     feature: "ai_requests",
 *     event: () => ({ type: "request" }),      // recorded when allowed; omit to only gate
 *   }));
 *
 * - Allowed: the event (if any) is recorded, the handler runs, and its response carries the balance in
 *   `x-quota-balance`, `x-quota-usage`, `x-quota-overage`; `c.get("quota")` holds the check result.
 * - Not allowed: 429 application/problem+json (code `quota_exceeded`) with the same headers; the handler does not run.
 * - The subject has no entitlement for the feature (or is unknown): 403 problem+json (code `no_entitlement`).
 * - edgemeter unreachable or failing after retries: 503 problem+json (code `quota_unavailable`), or the
 *   handler runs anyway with `failOpen: true`.
 *
 * Usage is recorded when the request is admitted, whatever the handler then answers. Each request's
 * event gets a random id unless `event` returns one: return your idempotency key as `id` to make a
 * retried client request count once.
 */
export interface QuotaOptions<C extends Context = Context> extends ClientOptions {
  subject: (c: C) => string | Promise<string>;
  feature: string | ((c: C) => string);
  /** Units this request needs; default: the event's contribution to the feature, else 1. */
  amount?: number | ((c: C) => number | undefined | Promise<number | undefined>);
  /** The usage event to record when allowed (type required; id, source, subject, time default). */
  event?: (c: C) => CheckEvent | Promise<CheckEvent>;
  /** Serve requests when edgemeter cannot answer. Default false (answer 503). */
  failOpen?: boolean;
}

/** Type `c.get("quota")` by adding these to your app's Variables; undefined when failOpen let a request through unchecked. */
export type QuotaVariables = { quota: CheckResult | undefined };

export function quota<C extends Context = Context>(options: QuotaOptions<C>): MiddlewareHandler {
  const client = createClient({ source: "edgemeter-quota", ...options });
  return async function quotaMiddleware(c, next) {
    const ctx = c as unknown as C;
    const subject = await options.subject(ctx);
    const feature = typeof options.feature === "function" ? options.feature(ctx) : options.feature;
    const amount = typeof options.amount === "function" ? await options.amount(ctx) : options.amount;
    const ev = options.event ? await options.event(ctx) : undefined;
    const event = ev ? { time: new Date().toISOString(), ...ev } : undefined;

    let result: CheckResult;
    try {
      result = await client.check({ subject, feature, ...(amount !== undefined ? { amount } : {}), ...(event ? { event } : {}) });
    } catch (e) {
      // Only edgemeter's own answer: a 404 from anything else (a proxy, a wrong host or path) says nothing
      // about entitlements, and refused every request with 403 even under failOpen.
      if (e instanceof EdgemeterError && e.status === 404 && e.problem?.code === "not_found") return problem(c, 403, "no_entitlement", "No Entitlement", `${subject} has no entitlement for ${feature}`, { feature });
      if (options.failOpen) {
        await next();
        return;
      }
      console.error("quota: edgemeter check failed", e);
      return problem(c, 503, "quota_unavailable", "Service Unavailable", "the quota service could not be reached; try again", { feature });
    }

    if (!result.allowed) {
      const detail = `the quota for ${feature} is exhausted: balance ${result.balance ?? 0}, this request needs ${result.amount ?? 1}`;
      const res = problem(c, 429, "quota_exceeded", "Quota Exceeded", detail, { feature, balance: result.balance, usage: result.usage, overage: result.overage });
      setQuotaHeaders(res.headers, result);
      return res;
    }
    c.set("quota" as never, result as never);
    await next();
    try {
      setQuotaHeaders(c.res.headers, result);
    } catch {
      // The handler returned a response with immutable headers (e.g. a fetched one): copy it.
      c.res = new Response(c.res.body, c.res);
      setQuotaHeaders(c.res.headers, result);
    }
  };
}

function setQuotaHeaders(headers: Headers, r: CheckResult): void {
  if (r.balance !== undefined) headers.set("x-quota-balance", String(r.balance));
  if (r.usage !== undefined) headers.set("x-quota-usage", String(r.usage));
  if (r.overage !== undefined) headers.set("x-quota-overage", String(r.overage));
}

function problem(c: Context, status: number, code: string, title: string, detail: string, extensions: Record<string, unknown>): Response {
  const body = { type: `urn:edgemeter:problem:${code}`, title, status, detail, instance: new URL(c.req.url).pathname, code, ...extensions };
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/problem+json" } });
}
