/**
 * Balance-threshold notification rules (`entitlements.balance.threshold`), after OpenMeter's
 * openmeter/notification/consumer/entitlementbalancethreshold.go.
 *
 * Threshold types (NotificationRuleBalanceThresholdValueType):
 * - `usage_value` (legacy `NUMBER`): usage in the current period reaches `value`.
 * - `usage_percentage` (legacy `PERCENT`): usage reaches `value`% of the grants available in the
 *   period. The 100% base is OpenMeter's totalAvailableGrantAmount = balance + usage covered by
 *   grants (= balance + usage − overage when no overage was carried in) — *not* balance + usage,
 *   which would grow with overage. Values above 100 are allowed and fire in overage. With nothing
 *   granted (base 0) percentage thresholds are skipped, as OpenMeter does, so that an
 *   entitlement whose grants are created a moment after it does not fire "100%" on first use.
 * - `balance_value`: the remaining balance falls to or below `value` (downward direction). Skipped
 *   while nothing was granted and nothing used (an empty entitlement is not news).
 *
 * Like OpenMeter, usage-kind and balance-kind thresholds are evaluated independently: one
 * evaluation yields at most one usage notification (the highest usage threshold reached) and at
 * most one balance notification (the lowest balance threshold reached), so one batch that
 * crosses several thresholds produces one notification per kind, for the most advanced one.
 * Lower thresholds skipped that way are not sent later either.
 *
 * Difference from OpenMeter (deliberate): reaching a threshold is inclusive. OpenMeter's current
 * code requires usage strictly above the threshold and balance strictly below it (except 0), so a
 * hard-limited entitlement that stops exactly at its limit never gets its "100%" notification.
 * Here usage >= threshold (and usage > 0, so a 0 threshold means "first usage") and
 * balance <= threshold.
 *
 * Dedupe: OpenMeter keeps one event per rule, period and kind, and fires again only when the
 * most advanced active threshold differs from the last one sent. Here the caller keeps the keys
 * (`thresholdKey`) already fired for this rule in this usage period and passes them in; a
 * fired key is never returned again in that period, and neither is a threshold that was already
 * reached before the transaction (pass `before = null` to evaluate from scratch, e.g. for a rule
 * created mid-period or the first value of a new period).
 */

export type ThresholdType = "usage_value" | "usage_percentage" | "balance_value" | "NUMBER" | "PERCENT";

export const THRESHOLD_TYPES: readonly ThresholdType[] = ["PERCENT", "NUMBER", "balance_value", "usage_percentage", "usage_value"];

export interface Threshold {
  type: ThresholdType;
  value: number;
}

/** The parts of an entitlement value a threshold is judged on. */
export interface ThresholdSubject {
  /** Usage in the current period (including overage). */
  usage: number;
  /** Remaining balance, never negative. */
  balance: number;
  /** The amount 100% refers to: totalAvailableGrantAmount from grants.computeBalance. */
  totalGranted: number;
}

export type ThresholdKind = "usage" | "balance";

export interface CrossedThresholds {
  usage: Threshold | null;
  balance: Threshold | null;
}

/** The current name of a (possibly legacy) type: NUMBER → usage_value, PERCENT → usage_percentage. */
export function canonicalThresholdType(type: ThresholdType): "usage_value" | "usage_percentage" | "balance_value" {
  if (type === "NUMBER") return "usage_value";
  if (type === "PERCENT") return "usage_percentage";
  return type;
}

export function thresholdKind(t: Threshold): ThresholdKind {
  return canonicalThresholdType(t.type) === "balance_value" ? "balance" : "usage";
}

/**
 * Stable dedupe key, e.g. `usage_percentage:80`. Legacy types share the key of their current
 * name, since they mean the same thing. Scope it by rule, entitlement and period when storing.
 */
export function thresholdKey(t: Threshold): string {
  const v = Object.is(t.value, -0) ? 0 : t.value;
  return `${canonicalThresholdType(t.type)}:${String(v)}`;
}

/**
 * Where a threshold sits on its own axis: the usage amount it stands for (usage kinds), or the
 * balance (balance kind). null when it cannot be judged yet (nothing granted).
 */
export function thresholdLevel(t: Threshold, v: ThresholdSubject): number | null {
  switch (canonicalThresholdType(t.type)) {
    case "usage_value":
      return t.value;
    case "usage_percentage":
      return v.totalGranted > 0 ? (v.totalGranted * t.value) / 100 : null;
    case "balance_value":
      return v.totalGranted > 0 || v.usage > 0 ? t.value : null;
  }
}

/** Whether `v` is at or past the threshold (inclusive; see the header). */
export function isThresholdReached(t: Threshold, v: ThresholdSubject): boolean {
  const level = thresholdLevel(t, v);
  if (level === null) return false;
  if (thresholdKind(t) === "balance") return v.balance <= level;
  if (canonicalThresholdType(t.type) === "usage_percentage") {
    // Compare usage·100 with value·total rather than usage with total·value/100: fewer roundings.
    return v.usage > 0 && v.usage * 100 >= t.value * v.totalGranted;
  }
  return v.usage > 0 && v.usage >= level;
}

/** The most advanced reached threshold of each kind, or null. */
export function mostAdvancedReached(thresholds: readonly Threshold[], v: ThresholdSubject): CrossedThresholds {
  let usage: { t: Threshold; level: number } | null = null;
  let balance: { t: Threshold; level: number } | null = null;
  for (const t of thresholds) {
    if (!Number.isFinite(t.value) || !isThresholdReached(t, v)) continue;
    const level = thresholdLevel(t, v) as number;
    if (thresholdKind(t) === "balance") {
      if (balance === null || level < balance.level) balance = { t, level };
    } else if (
      usage === null ||
      level > usage.level ||
      // Same amount as a percentage and as a value: OpenMeter reports the percentage one.
      (level === usage.level && canonicalThresholdType(t.type) === "usage_percentage")
    ) {
      usage = { t, level };
    }
  }
  return { usage: usage?.t ?? null, balance: balance?.t ?? null };
}

/**
 * The thresholds to notify about after a transaction moved an entitlement from `before` to
 * `after`: per kind, the most advanced threshold reached by `after`, provided it was not already
 * reached by `before` and its key is not in `alreadyFired` (keys fired this period).
 */
export function newlyCrossedThresholds(
  thresholds: readonly Threshold[],
  before: ThresholdSubject | null,
  after: ThresholdSubject,
  alreadyFired: ReadonlySet<string>,
): CrossedThresholds {
  const top = mostAdvancedReached(thresholds, after);
  const pick = (t: Threshold | null): Threshold | null => {
    if (t === null || alreadyFired.has(thresholdKey(t))) return null;
    if (before !== null && isThresholdReached(t, before)) return null;
    return t;
  };
  return { usage: pick(top.usage), balance: pick(top.balance) };
}
