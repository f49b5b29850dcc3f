import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { CheckInput } from "../customer/check";
import type { Identity } from "../customer/do";
import { customer, withConfig } from "../customer/client";
import { database } from "../db/client";
import { findFeature } from "../db/features";
import { LIMITS, subjectKey } from "../domain/cloudevent";
import type { MeterEvent } from "../domain/metering";
import { parseRfc3339 } from "../domain/time";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { amount, EntitlementValueSchema, unwrap } from "./entitlement-schemas";
import { namespaceConfig } from "./entitlements";
import { ApiError, errorResponses } from "./errors";
import { EventSchema } from "./schemas";

/**
 * POST /api/v1/check — atomic check-and-record, beyond OpenMeter (which tells users to keep its value
 * API off the request path). One RPC to the subject's Durable Object decides and, when allowed,
 * records the event in the same transaction (src/customer/check.ts has the rules).
 */

export const CheckRequest = z
  .object({
    subject: subjectKey,
    feature: z.string().min(1).max(64).openapi({ description: "Feature key (or feature id)." }),
    amount: amount().gt(0, "must be a positive number").optional().openapi({
      description: "Units to decide on. Default: the event's contribution to the feature (SUM: its value, COUNT: 1, UNIQUE_COUNT: 1 if new in the period, LATEST: its value) when an event is given, else 1.",
    }),
    event: EventSchema.optional().openapi({ description: "Recorded (deduplicated by source + id, like any ingested event) only when the check is allowed." }),
  })
  .openapi("CheckRequest");

const CheckResult = EntitlementValueSchema
  .extend({
    allowed: z.boolean(),
    entitlementId: z.string(),
    amount: z.number().optional().openapi({ description: "The amount decided on (metered entitlements)." }),
    duplicate: z.boolean().optional().openapi({ description: "The event was already stored by an earlier, allowed check or ingest: nothing was consumed now." }),
  })
  .openapi("CheckResult", { description: "The value after recording when allowed with an event, else the value the decision was made on." });

export const check = new OpenAPIHono<AppEnv>();

/** A check's one RPC to the subject's object; the bench's probe of it (src/http/debug.ts) calls it too. */
export async function decide(c: Context<AppEnv>, id: Identity, input: CheckInput) {
  const config = await namespaceConfig(c);
  return withConfig(config, (cfg) => customer(c.env, id).check(id, cfg, input));
}

check.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/check",
    summary: "Check a quota and record usage atomically",
    description:
      "Hard limit: allowed iff balance >= amount; soft limit, boolean and static entitlements: always allowed. When allowed and `event` " +
      "is given, the event is recorded in the same Durable Object transaction as the decision, so N concurrent checks against a limit L " +
      "admit exactly min(N, L) units. A retried check with the same event (source, id) answers allowed again and consumes nothing. " +
      "A refused check answers 200 with allowed: false and stores nothing.",
    tags: ["Entitlements"],
    // The body is capped like an ingest request's (LIMITS.bytesPerRequest) by requireScope's body gate (auth.ts).
    middleware: [requireScope("ingest")] as const,
    request: { body: { required: true, content: { "application/json": { schema: CheckRequest } } } },
    responses: {
      200: { description: "Decided", content: { "application/json": { schema: CheckResult } } },
      ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict", "payload_too_large"),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    if (body.event && body.event.subject !== body.subject) {
      const message = `must equal subject (${JSON.stringify(body.subject)}); the event names ${JSON.stringify(body.event.subject)}`;
      throw new ApiError("validation_failed", `event.subject: ${message}`, { errors: [{ field: "event.subject", message }] });
    }
    const now = Date.now();
    const e = body.event;
    const event: MeterEvent | null = e
      ? { index: 0, id: e.id, source: e.source, type: e.type, time: e.time ? parseRfc3339(e.time)! : now, data: e.data ?? null }
      : null;
    const namespace = c.get("principal").namespace;
    const id = { namespace, subject: body.subject };
    const r = await decide(c, id, { feature: body.feature, amount: body.amount ?? null, event });
    if (!r.ok && r.missing === "entitlement") {
      // Only on the miss path: tell an unknown feature from a subject without an entitlement for it.
      const feature = await findFeature(database(c.env.DB), namespace, body.feature);
      throw new ApiError("not_found", feature ? `subject ${body.subject} has no entitlement for feature ${feature.key}` : `no feature ${body.feature}`);
    }
    return c.json(unwrap(r), 200);
  },
);
