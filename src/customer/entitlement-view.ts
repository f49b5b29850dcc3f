import { intervalToISO } from "../domain/periods";
import { iso } from "../domain/time";
import type { EntitlementRecord } from "./entitlements";

/**
 * An entitlement in OpenMeter's wire shape (EntitlementMetered / Static / Boolean by `type`). Used by
 * the API and by webhook payloads, which must show the entitlement exactly as the API does.
 */
export function renderEntitlement(r: EntitlementRecord, subjectKey: string) {
  const m = r.metered;
  return {
    type: r.type,
    id: r.id,
    featureId: r.featureId,
    featureKey: r.featureKey,
    subjectKey,
    ...(r.metadata ? { metadata: r.metadata } : {}),
    createdAt: iso(r.createdAt),
    updatedAt: iso(r.updatedAt),
    ...(r.deletedAt !== null ? { deletedAt: iso(r.deletedAt) } : {}),
    activeFrom: iso(r.createdAt),
    ...(r.usagePeriod ? { usagePeriod: { interval: r.usagePeriod.interval, intervalISO: intervalToISO(r.usagePeriod.interval), anchor: iso(r.usagePeriod.anchor) } } : {}),
    ...(r.currentUsagePeriod ? { currentUsagePeriod: { from: iso(r.currentUsagePeriod.from), to: iso(r.currentUsagePeriod.to) } } : {}),
    ...(r.config !== null ? { config: r.config } : {}),
    ...(m
      ? {
          isSoftLimit: m.isSoftLimit,
          isUnlimited: false,
          ...(m.issueAfterReset !== null ? { issueAfterReset: m.issueAfterReset } : {}),
          ...(m.issueAfterResetPriority !== null ? { issueAfterResetPriority: m.issueAfterResetPriority } : {}),
          preserveOverageAtReset: m.preserveOverageAtReset,
          lastReset: iso(m.lastReset),
          measureUsageFrom: iso(m.measureUsageFrom),
        }
      : {}),
  };
}
