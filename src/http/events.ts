import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { customer } from "../customer/client";
import { iso, parseRfc3339 } from "../domain/time";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ApiError, errorResponses } from "./errors";
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

const ListQuery = z.object({
  subject: z.string().min(1).max(256).openapi({ description: "Required: events are kept per subject (exact match)." }),
  from: z.string().optional().openapi({ description: "RFC 3339, inclusive; default 72 hours ago" }),
  to: z.string().optional().openapi({ description: "RFC 3339, inclusive; default now" }),
  limit: z.coerce.number().int().min(1).max(100).default(100),
});

function time(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const t = parseRfc3339(value);
  if (t === null) throw new ApiError("validation_failed", `${name} must be an RFC 3339 date-time`, { errors: [{ field: name, message: "invalid date-time" }] });
  return t;
}

events.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/events",
    summary: "List a subject's stored events, newest first",
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
    const now = Date.now();
    const from = time(q.from, "from", now - 72 * 3_600_000);
    const to = time(q.to, "to", now);
    const namespace = c.get("principal").namespace;
    const rows = await customer(c.env, { namespace, subject: q.subject }).events({ namespace, subject: q.subject }, { from, to, limit: q.limit });
    return c.json(
      rows.map((r) => ({
        event: { specversion: "1.0" as const, id: r.id, source: r.source, type: r.type, subject: q.subject, time: iso(r.time), data: r.data === null ? null : (JSON.parse(r.data) as Record<string, unknown>) },
        ingestedAt: iso(r.ingestedAt),
        storedAt: iso(r.ingestedAt),
      })),
      200,
    );
  },
);
