import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { database } from "../db/client";
import { findNotificationEvent, listNotificationEvents, rulesByIds, type NotificationEventRow } from "../db/notifications";
import { customer } from "../customer/client";
import { iso, parseRfc3339 } from "../domain/time";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ApiError, errorResponses } from "./errors";
import { listParam, PageQuery, paginated, sortQuery } from "./pagination";
import { featureKeys, toRuleApi } from "./notification-rules";
import { RULE_TEST_ANNOTATION } from "./notification-sample";

export const NotificationEventSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    createdAt: z.string(),
    rule: z.record(z.string(), z.unknown()),
    deliveryStatus: z.array(z.record(z.string(), z.unknown())),
    payload: z.record(z.string(), z.unknown()),
    annotations: z.record(z.string(), z.unknown()).optional().openapi({ description: "Set by the system: `notification.rule.test` marks a rule test's event." }),
  })
  .openapi("NotificationEvent");

/**
 * Renders a page of events with one D1 query for all their rules (deleted ones included: an event
 * outlives its rule) and one for the feature keys, not a query per event: a 1,000-event page would
 * otherwise pass D1's 1,000 queries per invocation.
 */
async function toApi(env: AppEnv["Bindings"], namespace: string, events: readonly NotificationEventRow[]) {
  const rules = new Map((await rulesByIds(database(env.DB), namespace, events.map((r) => r.ruleId))).map((r) => [r.id, r]));
  const keys = [...rules.values()].some((r) => r.features.length) ? await featureKeys(env, namespace) : undefined;
  return events.map((r) => {
    const rule = rules.get(r.ruleId);
    return {
      id: r.id,
      type: r.type,
      createdAt: iso(r.createdAt),
      rule: rule ? toRuleApi(rule, keys) : { id: r.ruleId },
      deliveryStatus: r.deliveries as Record<string, unknown>[],
      payload: r.payload as Record<string, unknown>,
      ...(r.annotations ? { annotations: r.annotations } : {}),
    };
  });
}

const time = (field: string) =>
  z
    .string()
    .optional()
    .refine((v) => v === undefined || parseRfc3339(v) !== null, `${field} must be an RFC 3339 date-time`);

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const Id = z.object({ eventId: z.string().min(1).max(64) });

export const notificationEvents = new OpenAPIHono<AppEnv>();

notificationEvents.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/notification/events",
    summary: "List notification events with their delivery status, newest first",
    tags: ["Notifications"],
    middleware: [requireScope("read")] as const,
    request: {
      query: PageQuery.extend({
        from: time("from"),
        to: time("to"),
        rule: listParam(20).openapi({ description: "Rule ids (repeat the parameter)." }),
        subject: listParam(20).openapi({ description: "Subject keys or ids (repeat the parameter)." }),
        feature: listParam(20).openapi({ description: "Feature keys or ids (repeat the parameter)." }),
        channel: listParam(20).openapi({ description: "Channel ids: events with a delivery to one of them (repeat the parameter)." }),
        ...sortQuery(["id", "createdAt"], "createdAt (the default) or id; ties by id. Without order, newest first (DESC), as OpenMeter answers."),
      }),
    },
    responses: { 200: { description: "Events", content: json(paginated(NotificationEventSchema, "NotificationEventPaginatedResponse")) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const { rows, total } = await listNotificationEvents(database(c.env.DB), {
      namespace: c.get("principal").namespace,
      from: q.from ? parseRfc3339(q.from)! : undefined,
      to: q.to ? parseRfc3339(q.to)! : undefined,
      rules: q.rule,
      subjects: q.subject,
      features: q.feature,
      channels: q.channel,
      orderBy: q.orderBy ?? "createdAt",
      order: q.order ?? "DESC",
      limit: q.pageSize,
      offset: (q.page - 1) * q.pageSize,
    });
    return c.json({ totalCount: total, page: q.page, pageSize: q.pageSize, items: await toApi(c.env, c.get("principal").namespace, rows) }, 200);
  },
);

async function mustFind(env: AppEnv["Bindings"], namespace: string, id: string): Promise<NotificationEventRow> {
  const row = await findNotificationEvent(database(env.DB), namespace, id);
  if (!row) throw new ApiError("not_found", `no notification event ${id}`);
  return row;
}

notificationEvents.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/notification/events/{eventId}",
    summary: "Get a notification event with per-channel delivery status and attempts",
    tags: ["Notifications"],
    middleware: [requireScope("read")] as const,
    request: { params: Id },
    responses: { 200: { description: "Event", content: json(NotificationEventSchema) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const [item] = await toApi(c.env, namespace, [await mustFind(c.env, namespace, c.req.valid("param").eventId)]);
    return c.json(item!, 200);
  },
);

notificationEvents.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/notification/events/{eventId}/resend",
    summary: "Send a notification event again (same webhook-id) to all or some of its channels",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: {
      params: Id,
      body: {
        required: false,
        content: json(
          z
            .object({ channels: z.array(z.string()).max(100).optional().openapi({ description: "Channels the event was sent to (all of them when absent or empty); another channel is 400." }) })
            .openapi("NotificationEventResendRequest"),
        ),
      },
    },
    responses: { 202: { description: "Queued for delivery" }, ...errorResponses("validation_failed", "bad_request", "unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const row = await mustFind(c.env, namespace, c.req.valid("param").eventId);
    // A rule test's event was sent once, from the Worker: no subject's object holds it to send again.
    if (row.annotations?.[RULE_TEST_ANNOTATION]) throw new ApiError("bad_request", `notification event ${row.id} is a rule test's: it is not resent; test the rule again`);
    const channels = [...new Set(c.req.valid("json")?.channels ?? [])];
    // A channel the event was never sent to cannot be resent to: say so rather than resend to the others alone.
    const sentTo = new Set((row.deliveries as { channel?: { id?: string } }[]).map((d) => d.channel?.id));
    const errors = channels.flatMap((id, i) => (sentTo.has(id) ? [] : [{ field: `channels.${i}`, message: `notification event ${row.id} was not sent to channel ${id}` }]));
    if (errors.length) throw new ApiError("validation_failed", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
    const n = await customer(c.env, { namespace, subject: row.subject }).resendNotification({ namespace, subject: row.subject }, row.id, channels);
    if (n === 0) throw new ApiError("not_found", `notification event ${row.id} has no delivery to the given channels`);
    return c.body(null, 202);
  },
);
