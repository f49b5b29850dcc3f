import { expect } from "vitest";
import { api, createMeter, uid, type Call } from "./api";

export const MIN = 60_000;
export const truncMin = (ms: number) => Math.floor(ms / MIN) * MIN;
export const isoAt = (ms: number) => new Date(ms).toISOString();

export interface Setup {
  meter: string;
  feature: string;
  subject: string;
  eventType: string;
  entitlement: any;
}

/**
 * A meter, a metered feature on it and (unless `entitlement: null`) an entitlement for a fresh subject.
 * The default usage period is MONTH, anchored a day ago: no period boundary near the test.
 */
export async function setup(opts: {
  aggregation?: "SUM" | "COUNT" | "UNIQUE_COUNT" | "LATEST";
  groupBy?: Record<string, string>;
  filters?: Record<string, string>;
  /** The feature's advancedMeterGroupByFilters. */
  advancedFilters?: Record<string, unknown>;
  entitlement?: Record<string, unknown> | null;
  subject?: string;
} = {}): Promise<Setup> {
  const aggregation = opts.aggregation ?? "SUM";
  const meter = uid("m");
  const eventType = uid("type");
  await createMeter({
    slug: meter,
    eventType,
    aggregation,
    ...(aggregation === "COUNT" ? {} : { valueProperty: aggregation === "UNIQUE_COUNT" ? "$.user" : "$.tokens" }),
    ...(opts.groupBy ? { groupBy: opts.groupBy } : {}),
  });
  const feature = uid("f");
  const f = await api("POST", "/api/v1/features", { body: { key: feature, name: feature, meterSlug: meter, ...(opts.filters ? { meterGroupByFilters: opts.filters } : {}), ...(opts.advancedFilters ? { advancedMeterGroupByFilters: opts.advancedFilters } : {}) } });
  expect(f.status, f.text).toBe(201);
  const subject = opts.subject ?? uid("s");
  let entitlement: any = null;
  if (opts.entitlement !== null) {
    const body = { type: "metered", featureKey: feature, usagePeriod: { interval: "MONTH", anchor: isoAt(Date.now() - 86_400_000) }, ...opts.entitlement };
    const e = await api("POST", `/api/v1/subjects/${subject}/entitlements`, { body });
    expect(e.status, e.text).toBe(201);
    entitlement = e.body;
  }
  return { meter, feature, subject, eventType, entitlement };
}

let n = 0;
/** A usage event of the setup's type for its subject. */
export function usage(s: Setup, data: Record<string, unknown> = { tokens: 1 }, over: Record<string, unknown> = {}): Record<string, unknown> {
  n++;
  return { specversion: "1.0", id: `u-${n}-${Math.random().toString(36).slice(2)}`, source: "test", type: s.eventType, subject: s.subject, time: new Date().toISOString(), data, ...over };
}

export async function value(s: Setup, query = "", key?: string): Promise<Call> {
  return api("GET", `/api/v1/subjects/${encodeURIComponent(s.subject)}/entitlements/${s.feature}/value${query}`, { key });
}

export async function valueOk(s: Setup, query = ""): Promise<any> {
  const r = await value(s, query);
  expect(r.status, r.text).toBe(200);
  return r.body;
}

export async function grant(s: Setup, body: Record<string, unknown>): Promise<Call> {
  return api("POST", `/api/v1/subjects/${encodeURIComponent(s.subject)}/entitlements/${s.feature}/grants`, { body });
}

export async function check(body: Record<string, unknown>, key?: string): Promise<Call> {
  return api("POST", "/api/v1/check", { body, key });
}
