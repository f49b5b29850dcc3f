import { z } from "@hono/zod-openapi";
import type { EntitlementRecord, Result } from "../customer/entitlements";
import { renderEntitlement } from "../customer/entitlement-view";
import type { GrantRow } from "../customer/grants";
import { EXPIRATION_DURATIONS } from "../domain/entitlement";
import { FilterStringDoc } from "../domain/group-filter";
import { SLUG_PATTERN } from "../domain/meter";
import { intervalToISO, PERIOD_INTERVALS, type PeriodInterval } from "../domain/periods";
import { iso, parseRfc3339 } from "../domain/time";
import { MAX_ABS_VALUE } from "../domain/values";
import { ApiError, invalidField } from "./errors";

/** OpenMeter v1 wire shapes for features, entitlements, grants and entitlement values. */

export const Metadata = z.record(z.string().max(256), z.string().max(1024)).openapi("Metadata");
export const Key = z.string().min(1).max(64).regex(SLUG_PATTERN, "lowercase letters and digits, separated by single underscores");
const DateTime = z.iso.datetime({ offset: true });

// OpenMeter also accepts ISO-8601 durations; the four that equal an enum value are accepted too.
const ISO_INTERVALS: Record<string, PeriodInterval> = { P1D: "DAY", P1W: "WEEK", P1M: "MONTH", P1Y: "YEAR" };
export const Interval = z
  .string()
  .transform((v, ctx) => {
    // Any case: the spec's RecurringPeriodIntervalEnum describes "day, week, month, or year", and OpenMeter
    // upper-cases it. The ISO forms stay as the spec's pattern writes them.
    const upper = v.toUpperCase();
    const i = (PERIOD_INTERVALS as readonly string[]).includes(upper) ? (upper as PeriodInterval) : ISO_INTERVALS[v];
    if (!i) ctx.addIssue({ code: "custom", message: "one of DAY, WEEK, MONTH, YEAR in any case (or P1D, P1W, P1M, P1Y); other durations are not supported" });
    return i ?? "DAY";
  })
  .openapi({ type: "string", enum: [...PERIOD_INTERVALS], description: "DAY, WEEK, MONTH or YEAR in any case (or the equivalent ISO-8601 P1D, P1W, P1M, P1Y)." });

export const RecurringPeriodInput = z.object({ interval: Interval, anchor: DateTime.optional() }).openapi("RecurringPeriodCreateInput");
const RecurringPeriod = z.object({ interval: z.enum(PERIOD_INTERVALS as [PeriodInterval, ...PeriodInterval[]]), intervalISO: z.string(), anchor: z.string() }).openapi("RecurringPeriod");
export const Period = z.object({ from: z.string(), to: z.string() }).openapi("Period");

/** An amount of usage or credit: finite and bounded, so no balance or sum of them can overflow (MAX_ABS_VALUE). */
export const amount = () => z.number().finite().max(MAX_ABS_VALUE, `must be at most ${MAX_ABS_VALUE}`);

/**
 * A date-time zod has accepted, in epoch ms. zod takes any number of fractional digits; beyond 9 is
 * refused here rather than read as absent. With `field`, the problem's `errors` names it.
 */
export function ms(v: string, field?: string): number {
  const t = parseRfc3339(v);
  if (t !== null) return t;
  const message = `${JSON.stringify(v.slice(0, 64))} is not a date-time this API reads: at most 9 fractional digits`;
  if (field !== undefined) invalidField(field, message);
  throw new ApiError("validation_failed", message);
}

export const FeatureSchema = z
  .object({
    id: z.string(),
    key: z.string(),
    name: z.string(),
    metadata: Metadata.optional(),
    meterSlug: z.string().optional(),
    meterGroupByFilters: z.record(z.string(), z.string()).optional(),
    advancedMeterGroupByFilters: z.record(z.string(), FilterStringDoc).optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
    archivedAt: z.string().optional(),
  })
  .openapi("Feature");

const featureRef = {
  featureKey: Key.optional(),
  featureId: z.string().min(1).max(64).optional(),
  metadata: Metadata.optional(),
};
export const EntitlementCreateSchema = z
  .discriminatedUnion("type", [
    z.object({
      type: z.literal("metered"),
      ...featureRef,
      isSoftLimit: z.boolean().optional(),
      isUnlimited: z.boolean().optional().openapi({ deprecated: true, description: "Only false: an unlimited metered entitlement is not supported (400)." }),
      usagePeriod: RecurringPeriodInput,
      measureUsageFrom: z.union([z.enum(["CURRENT_PERIOD_START", "NOW"]), DateTime]).optional(),
      issueAfterReset: amount().min(0).optional(),
      issueAfterResetPriority: z.number().int().min(1).max(255).optional(),
      preserveOverageAtReset: z.boolean().optional(),
    }),
    z.object({ type: z.literal("static"), ...featureRef, usagePeriod: RecurringPeriodInput.optional(), config: z.string().max(64 * 1024) }),
    z.object({ type: z.literal("boolean"), ...featureRef, usagePeriod: RecurringPeriodInput.optional() }),
  ])
  .superRefine((v, ctx) => {
    if (v.featureKey === undefined && v.featureId === undefined) ctx.addIssue({ code: "custom", path: ["featureKey"], message: "either featureKey or featureId is required" });
    // Accepting it and metering a limit anyway would deny what the client meant to allow.
    if (v.type === "metered" && v.isUnlimited === true) ctx.addIssue({ code: "custom", path: ["isUnlimited"], message: "unlimited metered entitlements are not supported; leave it out, or use a boolean entitlement" });
    if (v.type === "metered" && v.issueAfterResetPriority !== undefined && v.issueAfterReset === undefined) {
      ctx.addIssue({ code: "custom", path: ["issueAfterResetPriority"], message: "issueAfterResetPriority requires issueAfterReset" });
    }
    if (v.type === "static") {
      let parsed: unknown;
      try {
        parsed = JSON.parse(v.config);
      } catch {
        parsed = undefined;
      }
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) ctx.addIssue({ code: "custom", path: ["config"], message: "must be the JSON text of an object" });
    }
  })
  .openapi("EntitlementCreateInputs");
export type EntitlementCreateBody = z.output<typeof EntitlementCreateSchema>;

export const EntitlementSchema = z
  .object({
    type: z.enum(["metered", "boolean", "static"]),
    id: z.string(),
    featureId: z.string(),
    featureKey: z.string(),
    subjectKey: z.string(),
    metadata: Metadata.optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
    deletedAt: z.string().optional(),
    activeFrom: z.string(),
    usagePeriod: RecurringPeriod.optional(),
    currentUsagePeriod: Period.optional(),
    config: z.string().optional(),
    isSoftLimit: z.boolean().optional(),
    isUnlimited: z.boolean().optional(),
    issueAfterReset: z.number().optional(),
    issueAfterResetPriority: z.number().int().optional(),
    preserveOverageAtReset: z.boolean().optional(),
    lastReset: z.string().optional(),
    measureUsageFrom: z.string().optional(),
  })
  .openapi("Entitlement", { description: "OpenMeter's EntitlementMetered, EntitlementStatic or EntitlementBoolean, by `type`." });

/** The one rendering, shared with webhook payloads (src/customer/entitlement-view.ts). */
export function toEntitlementApi(r: EntitlementRecord, subjectKey: string): z.infer<typeof EntitlementSchema> {
  return renderEntitlement(r, subjectKey);
}

export const EntitlementValueSchema = z
  .object({
    hasAccess: z.boolean(),
    balance: z.number().optional(),
    usage: z.number().optional(),
    overage: z.number().optional(),
    totalAvailableGrantAmount: z.number().optional(),
    config: z.string().optional(),
  })
  .openapi("EntitlementValue");

const Expiration = z.object({ duration: z.enum(EXPIRATION_DURATIONS), count: z.number().int().min(1).max(1000) }).openapi("ExpirationPeriod");

export const GrantCreateSchema = z
  .object({
    amount: amount().gt(0, "must be a positive number"),
    priority: z.number().int().min(1).max(255).optional(),
    effectiveAt: DateTime.openapi({ description: "Truncated to the minute (usage is stored per minute)." }),
    expiration: Expiration,
    maxRolloverAmount: amount().min(0).optional(),
    minRolloverAmount: amount().min(0).optional(),
    metadata: Metadata.optional(),
    recurrence: z.unknown().optional().openapi({ description: "Not supported: a grant with a recurrence is refused (400)." }),
  })
  .superRefine((g, ctx) => {
    // A reset keeps min(max, max(min, balance)): with min above max the minimum never applies. Both
    // default to 0 (OpenMeter's defaults), so a minRolloverAmount given alone is the usual way in.
    const min = g.minRolloverAmount ?? 0;
    const max = g.maxRolloverAmount ?? 0;
    if (min > max) {
      const maxText = g.maxRolloverAmount === undefined ? "maxRolloverAmount (0 when left out)" : `maxRolloverAmount (${max})`;
      ctx.addIssue({ code: "custom", path: ["minRolloverAmount"], message: `above ${maxText}: a reset keeps at most the maximum, so this minimum would never apply` });
    }
  })
  .openapi("EntitlementGrantCreateInput", { description: "minRolloverAmount may not exceed maxRolloverAmount (both default to 0)." });

export const GrantSchema = z
  .object({
    id: z.string(),
    entitlementId: z.string(),
    amount: z.number(),
    priority: z.number().int(),
    effectiveAt: z.string(),
    expiration: Expiration.optional(),
    expiresAt: z.string().optional(),
    maxRolloverAmount: z.number(),
    minRolloverAmount: z.number(),
    metadata: Metadata.optional(),
    annotations: z.record(z.string(), z.unknown()).optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
    voidedAt: z.string().optional(),
    /** `GET /api/v1/grants?includeDeleted=true` only: when the grant's entitlement was deleted. */
    deletedAt: z.string().optional(),
  })
  .openapi("EntitlementGrant");

export function toGrantApi(g: GrantRow): z.infer<typeof GrantSchema> {
  const d = g.def;
  return {
    id: g.id,
    entitlementId: g.entitlementId,
    amount: d.amount,
    priority: d.priority,
    effectiveAt: iso(d.effectiveAt),
    ...(d.expiration ? { expiration: d.expiration } : {}),
    ...(d.expiresAt !== null ? { expiresAt: iso(d.expiresAt) } : {}),
    maxRolloverAmount: d.maxRolloverAmount,
    minRolloverAmount: d.minRolloverAmount,
    ...(d.metadata ? { metadata: d.metadata } : {}),
    ...(d.annotations ? { annotations: d.annotations } : {}),
    createdAt: iso(g.createdAt),
    updatedAt: iso(g.updatedAt),
    ...(g.voidedAt !== null ? { voidedAt: iso(g.voidedAt) } : {}),
  };
}

/** A Durable Object answer, or the problem it names (the customer layer's codes are problem codes). */
export function unwrap<T>(r: Result<T>): T {
  if (r.ok) return r.value;
  const extensions = r.field ? { errors: [{ field: r.field, message: r.detail }] } : {};
  throw new ApiError(r.code, r.detail, extensions);
}
