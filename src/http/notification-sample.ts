import { renderEntitlement } from "../customer/entitlement-view";
import type { EntitlementRecord } from "../customer/entitlements";
import type { FeatureRow } from "../db/features";
import type { RuleRow } from "../db/notifications";
import { renderFeature } from "../domain/feature";
import { ulid } from "../domain/ids";
import { renderSubject } from "../domain/subject";
import { iso } from "../domain/time";

const DAY = 86_400_000;
/** Made-up usage: 80 of 100 units, so a percentage threshold reads as 80 %. */
const GRANTED = 100;
const USED = 80;

/** OpenMeter's annotation on a rule test's event. */
export const RULE_TEST_ANNOTATION = "notification.rule.test";

/**
 * What `POST /rules/{id}/test` sends: a payload of the rule's own type with OpenMeter's shape
 * (NotificationEventBalanceThresholdPayload / ResetPayload), so a receiver can be tested with the
 * validation it applies to real events. The feature is the rule's first one when it names one;
 * the subject, the entitlement and its value are made up (OpenMeter: "random data").
 */
export function samplePayload(rule: RuleRow, feature: FeatureRow | undefined, id: string, now: number) {
  const f = feature ?? { id: ulid(now), key: "test_feature", name: "Test feature", meterSlug: null, meterGroupByFilters: null, metadata: null, createdAt: now, updatedAt: now, archivedAt: null };
  // An underscore, not a dash: the payload's entitlement.subjectKey has the spec's key pattern.
  const subject = renderSubject({ id: ulid(now), key: "test_subject", displayName: "Test subject", metadata: null, stripeCustomerId: null, createdAt: now, updatedAt: now });
  const from = now - DAY;
  const entitlement: EntitlementRecord = {
    id: ulid(now),
    type: "metered",
    featureId: f.id,
    featureKey: f.key,
    metadata: null,
    createdAt: from,
    updatedAt: from,
    deletedAt: null,
    usagePeriod: { interval: "MONTH", anchor: from },
    currentUsagePeriod: { from, to: from + 30 * DAY },
    config: null,
    metered: { isSoftLimit: false, preserveOverageAtReset: false, issueAfterReset: GRANTED, issueAfterResetPriority: null, lastReset: from, measureUsageFrom: from },
  };
  const data = {
    entitlement: renderEntitlement(entitlement, subject.key),
    feature: renderFeature(f),
    subject,
    value: { hasAccess: true, balance: GRANTED - USED, usage: USED, overage: 0, totalAvailableGrantAmount: GRANTED },
  };
  const threshold = rule.thresholds[0];
  return {
    id,
    type: rule.type as "entitlements.balance.threshold" | "entitlements.reset",
    timestamp: iso(now),
    data: rule.type === "entitlements.balance.threshold" && threshold ? { ...data, threshold } : data,
  };
}
