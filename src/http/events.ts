import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { customer } from "../customer/client";
import type { EventListQuery } from "../customer/events";
import { database } from "../db/client";
import { subjectKeysContaining } from "../db/subjects";
import { iso, parseRfc3339 } from "../domain/time";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ApiError, errorResponses, invalidField } from "./errors";
import { ingestEvents, readEvents } from "./ingest";
import { EventSchema, IngestedEventSchema, IngestResultSchema } from "./schemas";

export const events = new OpenAPIHono<AppEnv>();

const ingestRoute = createRoute({
  method: "post",
  path: "/api/v1/events",
  summary: "Ingest events (CloudEvents; OpenMeter-compatible)",
  description:
    "Accepts `application/cloudevents+json` (one event), `application/cloudevents-batch+json` (an array) or `application/json` (either), " +
    "or one event in CloudEvents' binary HTTP mode (`ce-*` headers, JSON data as the body). " +
    "A request with any malformed event is rejected whole (400, each bad event named by index and field). Unlike OpenMeter's empty 204, " +
    "the 202 answer says what was accepted, what was a duplicate, and what could not be metered.",
  tags: ["Events"],
  request: {
    body: {
      required: true,
      content: {
        "application/cloudevents+json": { schema: EventSchema },
        "application/cloudevents-batch+json": { schema: z.array(EventSchema) },
        "application/json": { schema: z.union([EventSchema, z.array(EventSchema)]) },
      },
    },
  },
  responses: {
    202: { description: "Stored durably", content: { "application/json": { schema: IngestResultSchema } } },
    ...errorResponses("invalid_events", "unauthenticated", "forbidden", "payload_too_large", "unsupported_media_type", "retry_batch"),
  },
});
// Registered for the document only: the body is read by hand to enforce size limits and report per-event errors.
events.openAPIRegistry.registerPath(ingestRoute);
events.post("/api/v1/events", requireScope("ingest"), async (c) => {
  const list = await readEvents(c.req.raw);
  const reply = await ingestEvents(c.env, c.get("principal").namespace, list);
  return c.json(reply, 202);
});

/**
 * Events live in each subject's Durable Object (no namespace-wide copy: that would be a second row
 * written per event), so a list reaches every matching subject's object, and each scans its own log.
 * The bound keeps one list to a bounded number of object calls (and subrequests).
 */
export const MAX_SUBJECTS_LISTED = 1_000;

const ListQuery = z.object({
  subject: z.string().min(1).max(256).optional().openapi({
    description: `A part of the subject key (case-sensitive), as OpenMeter's "accepts partial subject"; absent: every subject. Events live with their subject: the list asks each matching subject (at most ${MAX_SUBJECTS_LISTED.toLocaleString("en")}, else 400).`,
  }),
  id: z.string().optional().openapi({ description: "A part of the event id (case-sensitive)." }),
  from: z.string().optional().openapi({ description: "Event time, RFC 3339, inclusive; default 72 hours ago" }),
  to: z.string().optional().openapi({ description: "Event time, RFC 3339, inclusive; default none, so events stamped ahead of now (ingest accepts up to 5 minutes) are listed" }),
  ingestedAtFrom: z.string().optional().openapi({ description: "Ingestion time, RFC 3339, inclusive." }),
  ingestedAtTo: z.string().optional().openapi({ description: "Ingestion time, RFC 3339, inclusive." }),
  clientId: z.string().min(1).max(36).optional().openapi({ description: "Accepted: OpenMeter names a query with it to report its progress; it does not change the answer, and edgemeter has no progress route." }),
  customerId: z.union([z.string(), z.array(z.string())]).optional().openapi({ description: "Refused (400): edgemeter has no customers; name the subject." }),
  limit: z.coerce.number().int().min(1).max(100).default(100),
});

function time(value: string | undefined, name: string): number | null {
  if (value === undefined) return null;
  const t = parseRfc3339(value);
  if (t === null) throw new ApiError("validation_failed", `${name} must be an RFC 3339 date-time`, { errors: [{ field: name, message: "invalid date-time" }] });
  return t;
}

events.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/events",
    summary: "List stored events, newest first",
    tags: ["Events"],
    middleware: [requireScope("read")] as const,
    request: { query: ListQuery },
    responses: {
      200: { description: "Events", content: { "application/json": { schema: z.array(IngestedEventSchema) } } },
      ...errorResponses("validation_failed", "unauthenticated", "forbidden"),
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    // Filtering by customer would change the answer, and there are no customers to filter by.
    if (q.customerId !== undefined) invalidField("customerId", "edgemeter has no customers; events are listed per subject");
    const query: EventListQuery = {
      from: time(q.from, "from") ?? Date.now() - 72 * 3_600_000,
      // OpenMeter's listEvents gives `to` no default: a just-ingested event stamped ahead of now is listed.
      to: time(q.to, "to"),
      ingestedFrom: time(q.ingestedAtFrom, "ingestedAtFrom"),
      ingestedTo: time(q.ingestedAtTo, "ingestedAtTo"),
      idContains: q.id ?? null,
      limit: q.limit,
    };
    const namespace = c.get("principal").namespace;
    const matching = await subjectKeysContaining(database(c.env.DB), namespace, q.subject ?? null, MAX_SUBJECTS_LISTED + 1);
    if (matching.length > MAX_SUBJECTS_LISTED) {
      const which = q.subject === undefined ? "the namespace has" : `subject ${JSON.stringify(q.subject)} is part of the keys of`;
      invalidField("subject", `${which} more than ${MAX_SUBJECTS_LISTED.toLocaleString("en")} subjects; name fewer (a longer part of the key)`);
    }
    // The named subject itself even before its registration in D1 has landed (it follows the first write).
    const subjects = q.subject === undefined || matching.includes(q.subject) ? matching : [q.subject, ...matching];
    const lists = await Promise.all(
      subjects.map(async (subject) => (await customer(c.env, { namespace, subject }).events({ namespace, subject }, query)).map((r) => ({ ...r, subject }))),
    );
    const rows = lists
      .flat()
      .sort((a, b) => b.time - a.time || b.ingestedAt - a.ingestedAt || (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0))
      .slice(0, q.limit);
    return c.json(
      rows.map((r) => ({
        event: { specversion: "1.0" as const, id: r.id, source: r.source, type: r.type, subject: r.subject, time: iso(r.time), data: r.data === null ? null : (JSON.parse(r.data) as Record<string, unknown>) },
        ingestedAt: iso(r.ingestedAt),
        storedAt: iso(r.ingestedAt),
      })),
      200,
    );
  },
);
