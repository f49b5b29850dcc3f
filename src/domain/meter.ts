import { z } from "zod";

export const AGGREGATIONS = ["SUM", "COUNT", "UNIQUE_COUNT", "AVG", "MIN", "MAX", "LATEST"] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

/** What a customer Durable Object needs of a meter to count events. */
export interface MeterDef {
  id: string;
  slug: string;
  eventType: string;
  aggregation: Aggregation;
  valueProperty: string | null;
  groupBy: Record<string, string>;
  /** Events before this time (epoch ms) are not metered. */
  eventFrom: number | null;
}

export const SLUG_PATTERN = /^[a-z0-9]+(?:_[a-z0-9]+)*$/;
const GROUP_BY_KEY = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MAX_GROUP_BY = 20;

const jsonPath = z.string().min(1).max(256).startsWith("$", "must be a JSONPath starting with $");
const groupBy = z
  .record(z.string().regex(GROUP_BY_KEY, "group by keys consist only of letters, digits and underscores"), jsonPath)
  .refine((g) => Object.keys(g).length <= MAX_GROUP_BY, `at most ${MAX_GROUP_BY} group by keys`);
const metadata = z.record(z.string().max(256), z.string().max(1024)).nullable().optional();

/** OpenMeter's MeterCreate with its validation rules (see models.Meter.Validate in OpenMeter). */
export const meterCreateSchema = z
  .object({
    slug: z.string().min(1).max(64).regex(SLUG_PATTERN, "slug consists of lowercase letters and digits, separated by single underscores"),
    name: z.string().min(1).max(256).optional(),
    description: z.string().max(1024).optional(),
    metadata,
    aggregation: z.enum(AGGREGATIONS),
    eventType: z.string().min(1).max(256),
    eventFrom: z.iso.datetime({ offset: true }).optional(),
    valueProperty: jsonPath.optional(),
    groupBy: groupBy.optional(),
  })
  .superRefine((m, ctx) => {
    if (m.aggregation === "COUNT" && m.valueProperty !== undefined) {
      ctx.addIssue({ code: "custom", path: ["valueProperty"], message: "meter value property is not allowed when the aggregation is COUNT" });
    }
    if (m.aggregation !== "COUNT" && m.valueProperty === undefined) {
      ctx.addIssue({ code: "custom", path: ["valueProperty"], message: `meter value property is required when the aggregation is ${m.aggregation}` });
    }
    for (const [key, path] of Object.entries(m.groupBy ?? {})) {
      if (path === m.valueProperty) {
        ctx.addIssue({ code: "custom", path: ["groupBy", key], message: "a group by value cannot be the same as the value property" });
      }
    }
  });
export type MeterCreate = z.output<typeof meterCreateSchema>;

/** OpenMeter's MeterUpdate: slug, aggregation, eventType and valueProperty are immutable. */
export const meterUpdateSchema = z.object({
  name: z.string().min(1).max(256).optional(),
  description: z.string().max(1024).optional(),
  metadata,
  groupBy: groupBy.optional(),
  // Accepted only when equal to the stored value, so clients that send the whole meter back still work.
  slug: z.string().optional(),
  aggregation: z.enum(AGGREGATIONS).optional(),
  eventType: z.string().optional(),
  valueProperty: z.string().optional(),
  eventFrom: z.iso.datetime({ offset: true }).optional(),
});
export type MeterUpdate = z.output<typeof meterUpdateSchema>;

export const IMMUTABLE_METER_FIELDS = ["slug", "aggregation", "eventType", "valueProperty", "eventFrom"] as const;

/** A stable fingerprint of what changes counting: a DO re-meters when it changes. */
export function meterFingerprint(m: MeterDef): string {
  const groupKeys = Object.keys(m.groupBy).sort();
  return JSON.stringify([m.eventType, m.aggregation, m.valueProperty, m.eventFrom, groupKeys.map((k) => [k, m.groupBy[k]])]);
}
