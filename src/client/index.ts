/**
 * A small typed client for edgemeter's ingest, check and value calls, for users' own services.
 * No dependencies: the global fetch, AbortSignal.timeout and crypto.getRandomValues, so it runs the same
 * on Cloudflare Workers and Node ≥ 22 (and Deno, Bun).
 *
 *   import { createClient } from "edgemeter/client";
 *   const em = createClient({ baseUrl: "https://meter.example.com", apiKey: env.EDGEMETER_KEY });
 *   const r = await em.check({ subject: "customer-1", feature: "ai_tokens", event: { type: "prompt", data: { tokens: 120 } } });
 *   if (!r.allowed) …
 *
 * Retries: every call here is safe to repeat — ingest and check deduplicate events by (source, id),
 * a check without an event records nothing, value only reads — so network errors, timeouts and 5xx
 * answers are retried (default twice, with backoff of at most 5 s; Retry-After is honoured up to 5 s).
 * Events get a time-ordered id (UUIDv7, timeOrderedId below) when they have none, fixed before the first attempt,
 * so a retry never counts twice.
 */
import type { EntitlementValue } from "../domain/entitlement";

export type { EntitlementValue };

/** A CloudEvent as edgemeter accepts it; specversion, id, source, subject and time are filled in when absent where noted. */
export interface CloudEvent {
  specversion?: "1.0";
  id: string;
  source: string;
  type: string;
  subject: string;
  /** RFC 3339; the gateway's receive time when absent. */
  time?: string | null;
  data?: Record<string, unknown> | null;
  [extension: string]: unknown;
}

/** An event for check(): `subject` defaults to the check's subject, `id` to a random UUID, `source` to the client's. */
export interface CheckEvent {
  type: string;
  id?: string;
  source?: string;
  subject?: string;
  time?: string | null;
  data?: Record<string, unknown> | null;
  [extension: string]: unknown;
}

export interface ClientOptions {
  /** e.g. https://meter.example.com (no trailing path). */
  baseUrl: string;
  apiKey: string;
  /** Replaces the global fetch (tests, service bindings: `fetch: (r) => env.EDGEMETER.fetch(r)`). */
  fetch?: (request: Request) => Promise<Response>;
  /** Per attempt. Default 10 000 ms. */
  timeoutMs?: number;
  /** Extra attempts after a network error, timeout or 5xx. Default 2. */
  retries?: number;
  /** `source` of events this client fills in. Default "edgemeter-client". */
  source?: string;
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
  rejected: { index: number; id: string; source: string; reason: string }[];
}

export interface CheckRequest {
  subject: string;
  /** Feature key (or id). */
  feature: string;
  /** Default: the event's contribution to the feature when an event is given, else 1. */
  amount?: number;
  /** Recorded, atomically with the decision, only when allowed. */
  event?: CheckEvent;
}

export interface CheckResult extends EntitlementValue {
  allowed: boolean;
  entitlementId: string;
  amount?: number;
  duplicate?: boolean;
}

/** RFC 9457 problem details as edgemeter answers them. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [extension: string]: unknown;
}

export class EdgemeterError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problem?: Problem,
  ) {
    super(message);
    this.name = "EdgemeterError";
  }
}

export interface EdgemeterClient {
  ingest(events: CloudEvent | CloudEvent[]): Promise<IngestResult>;
  check(request: CheckRequest): Promise<CheckResult>;
  value(subject: string, featureOrEntitlement: string, options?: { time?: Date | string }): Promise<EntitlementValue>;
}

const RETRY_AFTER_CAP_MS = 5_000;

/** `work`'s outcome, or the signal's reason as soon as it aborts, whichever comes first. */
function beforeAbort<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
    work()
      .then(resolve, reject)
      .finally(() => signal.removeEventListener("abort", abort));
  });
}

export function createClient(options: ClientOptions): EdgemeterClient {
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? ((r: Request) => fetch(r));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retries = options.retries ?? 2;
  const source = options.source ?? "edgemeter-client";

  async function call<T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      let text: string;
      try {
        const signal = AbortSignal.timeout(timeoutMs);
        // The body is part of the attempt: the timeout also aborts its reading, and a body that stalls or
        // breaks off is a network error like any other (it escaped as a bare TimeoutError, never retried).
        // Raced against the timeout too: a custom fetch that ignores the signal must not hang the caller.
        ({ res, text } = await beforeAbort(signal, async () => {
          const r = await doFetch(
            new Request(base + path, {
              method,
              headers: { authorization: `Bearer ${options.apiKey}`, accept: "application/json", ...(payload !== undefined ? { "content-type": contentType } : {}) },
              body: payload,
              signal,
            }),
          );
          return { res: r, text: await r.text() };
        }));
      } catch (e) {
        if (attempt < retries) {
          await sleep(backoff(attempt));
          continue;
        }
        throw new EdgemeterError(0, `edgemeter unreachable: ${(e as Error)?.message ?? e}`);
      }
      if (res.ok) {
        // Not edgemeter's answer (e.g. a captive proxy's HTML): an EdgemeterError like any other failure, not a bare SyntaxError.
        try {
          return (text ? JSON.parse(text) : undefined) as T;
        } catch {
          throw new EdgemeterError(res.status, `edgemeter answered ${res.status} with a body that is not JSON`);
        }
      }
      if (res.status >= 500 && attempt < retries) {
        const after = Number(res.headers.get("retry-after"));
        await sleep(Number.isFinite(after) && after > 0 ? Math.min(after * 1000, RETRY_AFTER_CAP_MS) : backoff(attempt));
        continue;
      }
      let problem: Problem | undefined;
      try {
        problem = JSON.parse(text) as Problem;
      } catch {
        problem = undefined;
      }
      throw new EdgemeterError(res.status, problem?.detail ?? `edgemeter answered ${res.status}`, problem);
    }
  }

  const withDefaults = (e: CloudEvent): CloudEvent => ({ ...e, specversion: "1.0" });

  return {
    ingest(events) {
      const list = (Array.isArray(events) ? events : [events]).map(withDefaults);
      return call<IngestResult>("POST", "/api/v1/events", list, "application/cloudevents-batch+json");
    },
    check(request) {
      const e = request.event;
      // The id is fixed here, before the first attempt: a retried check must carry the same event.
      const event = e ? withDefaults({ ...e, id: e.id ?? timeOrderedId(), source: e.source ?? source, subject: e.subject ?? request.subject }) : undefined;
      return call<CheckResult>("POST", "/api/v1/check", { subject: request.subject, feature: request.feature, ...(request.amount !== undefined ? { amount: request.amount } : {}), ...(event ? { event } : {}) });
    },
    value(subject, feature, opts) {
      const time = opts?.time === undefined ? "" : `?time=${encodeURIComponent(typeof opts.time === "string" ? opts.time : opts.time.toISOString())}`;
      return call<EntitlementValue>("GET", `/api/v1/subjects/${encodeURIComponent(subject)}/entitlements/${encodeURIComponent(feature)}/value${time}`);
    },
  };
}

// Doubling from 100 ms, at most 5 s: uncapped, `retries: 12` slept 3.4 minutes before its last attempt.
const BACKOFF_CAP_MS = 5_000;
const backoff = (attempt: number) => Math.min(100 * 2 ** attempt, BACKOFF_CAP_MS) + Math.random() * 50;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids that grow with time are
 * stored next to each other in a customer's dedupe log; random UUIDv4 ids cost edgemeter ~4× the CPU
 * per event at volume (README "Event ids"). Use the same shape for ids you make yourself.
 */
export function timeOrderedId(now = Date.now()): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let ms = now;
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
