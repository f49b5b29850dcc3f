import { z } from "zod";
import { parseRfc3339 } from "./time";

/** Chosen limits (README "Limits"): generous for real ids (UUIDs, ULIDs, URLs), small enough to keep keys cheap. */
export const LIMITS = {
  idLength: 256,
  sourceLength: 256,
  subjectLength: 256,
  typeLength: 256,
  eventsPerRequest: 1000,
  bytesPerRequest: 1024 * 1024,
} as const;

const attr = (max: number) => z.string().min(1, "must be a non-empty string").max(max, `must be at most ${max} characters`);

/**
 * CloudEvents 1.0 (JSON format) as OpenMeter accepts it: required id, source, specversion "1.0",
 * type and subject; optional time (RFC 3339) and data (a JSON object). Optional attributes may be null
 * (CloudEvents JSON format §3.1); extension attributes pass through untouched.
 */
export const cloudEventSchema = z.looseObject({
  id: attr(LIMITS.idLength),
  source: attr(LIMITS.sourceLength),
  specversion: z.literal("1.0", { error: 'must be "1.0"' }),
  type: attr(LIMITS.typeLength),
  subject: attr(LIMITS.subjectLength),
  time: z
    .string()
    .refine((t) => parseRfc3339(t) !== null, "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    .nullish(),
  datacontenttype: z.string().regex(/^application\/(cloudevents\+)?json(\s*;.*)?$/i, "only application/json data is accepted").nullish(),
  dataschema: z.string().min(1).nullish(),
  data: z.record(z.string(), z.unknown(), { error: "must be a JSON object" }).nullish(),
});
export type CloudEvent = z.output<typeof cloudEventSchema>;

export interface EventIssue {
  index: number;
  field: string;
  message: string;
}

/** Validates every event; the request is accepted only when this returns no issues. */
export function validateEvents(items: readonly unknown[]): { events: CloudEvent[]; issues: EventIssue[] } {
  const events: CloudEvent[] = [];
  const issues: EventIssue[] = [];
  items.forEach((item, index) => {
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      issues.push({ index, field: "", message: "an event must be a JSON object" });
      return;
    }
    const r = cloudEventSchema.safeParse(item);
    if (r.success) events.push(r.data);
    else for (const i of r.error.issues) issues.push({ index, field: i.path.map(String).join(".") || "", message: i.message });
  });
  return { events, issues };
}
