/**
 * Entitlements (OpenMeter v1): what a subject may use of a feature. Pure definitions and rules;
 * storage and the running counters are in src/customer/.
 *
 * Time granularity: usage is stored in UTC minute buckets, so every instant that splits usage —
 * measureUsageFrom, the usage-period anchor, a reset, a grant's effectiveAt and voidedAt — is
 * truncated to the minute, as OpenMeter does with its metering window. A grant's expiresAt is
 * computed from the truncated effectiveAt, so it is minute-aligned too. That is what makes every
 * balance exact: no boundary ever falls inside a bucket.
 */
import { groupPredicate, type GroupFilters } from "./group-filter";
import type { Aggregation } from "./meter";
import type { PeriodInterval } from "./periods";

export const MINUTE_MS = 60_000;

export function truncMinute(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

/** OpenMeter: "Meters with SUM, COUNT, UNIQUE_COUNT and LATEST aggregations are supported for features." */
export const BALANCE_AGGREGATIONS = ["SUM", "COUNT", "UNIQUE_COUNT", "LATEST"] as const satisfies readonly Aggregation[];
export type BalanceAggregation = (typeof BALANCE_AGGREGATIONS)[number];

export function isBalanceAggregation(a: Aggregation): a is BalanceAggregation {
  return (BALANCE_AGGREGATIONS as readonly string[]).includes(a);
}

export const ENTITLEMENT_TYPES = ["metered", "boolean", "static"] as const;
export type EntitlementType = (typeof ENTITLEMENT_TYPES)[number];

export const EXPIRATION_DURATIONS = ["HOUR", "DAY", "WEEK", "MONTH", "YEAR"] as const;
export type ExpirationDuration = (typeof EXPIRATION_DURATIONS)[number];
export interface ExpirationPeriod {
  duration: ExpirationDuration;
  count: number;
}

/**
 * effectiveAt + count × duration. Months and years overflow like Go's time.AddDate, which
 * OpenMeter uses (Jan 31 + 1 month = Mar 3, or Mar 2 in a leap year); JS Date arithmetic does the same.
 */
export function expiresAt(effectiveAt: number, e: ExpirationPeriod): number {
  switch (e.duration) {
    case "HOUR":
      return effectiveAt + e.count * 3_600_000;
    case "DAY":
      return effectiveAt + e.count * 86_400_000;
    case "WEEK":
      return effectiveAt + e.count * 7 * 86_400_000;
    case "MONTH":
    case "YEAR": {
      const d = new Date(effectiveAt);
      d.setUTCMonth(d.getUTCMonth() + e.count * (e.duration === "YEAR" ? 12 : 1));
      return d.getTime();
    }
  }
}

export interface UsagePeriodInput {
  interval: PeriodInterval;
  /** Epoch ms; null = the entitlement's creation time. */
  anchor: number | null;
}

export type MeasureUsageFrom = number | "NOW" | "CURRENT_PERIOD_START";

/** A validated create request, with the feature and (for metered) its meter already resolved. */
export interface EntitlementCreate {
  id: string;
  type: EntitlementType;
  feature: { id: string; key: string };
  metadata: Record<string, string> | null;
  usagePeriod: UsagePeriodInput | null;
  /** Static entitlements: the JSON object text returned with every value. */
  config: string | null;
  metered: {
    meter: { id: string; slug: string; aggregation: BalanceAggregation };
    /** The feature's meterGroupByFilters, copied at creation as OpenMeter does. */
    filters: Record<string, string>;
    /** The feature's advancedMeterGroupByFilters, copied likewise; both must hold. */
    advancedFilters?: GroupFilters;
    isSoftLimit: boolean;
    preserveOverageAtReset: boolean;
    issueAfterReset: number | null;
    issueAfterResetPriority: number | null;
    /** Id for the grant issueAfterReset creates (indexed in D1 by the caller beforehand). */
    defaultGrantId: string | null;
    measureUsageFrom: MeasureUsageFrom | null;
  } | null;
}

/** What a Durable Object stores as an entitlement's immutable definition. */
export interface EntitlementDef {
  type: EntitlementType;
  metadata: Record<string, string> | null;
  interval: PeriodInterval | null;
  config: string | null;
  metered: {
    meterId: string;
    meterSlug: string;
    aggregation: BalanceAggregation;
    filters: Record<string, string>;
    /** Absent in definitions stored before features took advancedMeterGroupByFilters. */
    advancedFilters?: GroupFilters;
    isSoftLimit: boolean;
    preserveOverageAtReset: boolean;
    issueAfterReset: number | null;
    issueAfterResetPriority: number | null;
    measureUsageFrom: number;
  } | null;
}

export interface GrantCreate {
  id: string;
  amount: number;
  priority: number;
  effectiveAt: number;
  expiration: ExpirationPeriod;
  minRolloverAmount: number;
  maxRolloverAmount: number;
  metadata: Record<string, string> | null;
}

/** OpenMeter's EntitlementValue. */
export interface EntitlementValue {
  hasAccess: boolean;
  balance?: number;
  usage?: number;
  overage?: number;
  totalAvailableGrantAmount?: number;
  config?: string;
}

/** OpenMeter's MeteredEntitlementValue.HasAccess: a soft limit always has access, a hard one while balance > 0. */
export function meteredHasAccess(balance: number, isSoftLimit: boolean): boolean {
  return isSoftLimit || balance > 0;
}

/**
 * Whether a bucket's group-by values (its JSON group key) pass a feature's filters: every key of
 * meterGroupByFilters present with exactly that value, and every advancedMeterGroupByFilters
 * condition (the meter query's rules, domain/group-filter.ts).
 */
export function matchesFilters(
  groupKey: string,
  m: { readonly filters: Readonly<Record<string, string>>; readonly advancedFilters?: GroupFilters },
  cache?: Map<string, boolean>,
): boolean {
  const keys = Object.keys(m.filters);
  const advanced = m.advancedFilters ?? [];
  if (keys.length === 0 && advanced.length === 0) return true;
  const hit = cache?.get(groupKey);
  if (hit !== undefined) return hit;
  let ok = false;
  try {
    const g = JSON.parse(groupKey) as Record<string, string | null>;
    ok = keys.every((k) => g[k] === m.filters[k]) && (advanced.length === 0 || groupPredicate(advanced)(g));
  } catch {
    ok = false;
  }
  cache?.set(groupKey, ok);
  return ok;
}
