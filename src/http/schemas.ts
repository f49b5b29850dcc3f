import { z } from "@hono/zod-openapi";
import { cloudEventSchema } from "../domain/cloudevent";
import { isValidTimeZone, WINDOW_SIZES } from "../domain/windows";
import { invalidField } from "./errors";

/** OpenAPI views of shared wire shapes (OpenMeter v1 names). */

/** A definition's `metadata`, left out when unset: OpenMeter's schemas type it as an object, not nullable. */
export const metadataField = <T extends Record<string, unknown>>(metadata: T | null | undefined) => (metadata ? { metadata } : {});
export const EventSchema = cloudEventSchema.openapi("Event", {
  example: { specversion: "1.0", id: "5c10fade-1c9e-4d6c-8275-c52c36731d3c", source: "my-service", type: "prompt", subject: "customer-1", time: "2026-01-01T00:00:00Z", data: { tokens: 120, model: "gpt-4o" } },
});

export const IngestResultSchema = z
  .object({
    accepted: z.number().int().openapi({ description: "Events stored and counted by this request." }),
    duplicates: z.number().int().openapi({ description: "Events whose (source, id) was already stored, or repeated within the request: counted once, earlier." }),
    rejected: z
      .array(z.object({ index: z.number().int(), id: z.string(), source: z.string(), reason: z.string() }))
      .openapi({ description: "Well-formed events that cannot be metered (outside the retention window, or a value a meter cannot read). Never counted; not stored." }),
  })
  .openapi("IngestResult");

export const IngestedEventSchema = z
  .object({
    event: EventSchema,
    ingestedAt: z.string(),
    storedAt: z.string(),
    validationError: z.string().optional(),
  })
  .openapi("IngestedEvent");

export const SubjectSchema = z
  .object({
    id: z.string(),
    key: z.string(),
    displayName: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    stripeCustomerId: z.string().optional(),
    currentPeriodStart: z.string().optional(),
    currentPeriodEnd: z.string().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Subject");

/** The meter query's windowing, which the entitlement history takes too. */
export const WindowSizeSchema = z.enum(WINDOW_SIZES);
export const WindowTimeZoneSchema = z.string().max(64).default("UTC");

/** 400 for a time zone this runtime's Intl does not know (checked outside zod, which cannot tell). */
export function checkTimeZone(tz: string): void {
  if (!isValidTimeZone(tz)) invalidField("windowTimeZone", `unknown IANA time zone ${JSON.stringify(tz)}`);
}
