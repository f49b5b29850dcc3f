import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { database } from "../db/client";
import { forgetNamespaceConfig } from "../db/config";
import { findFeature, listFeatures } from "../db/features";
import { findRule, listChannelsQuery, listRulesQuery, saveRule, toChannelDef, toRuleDef, upsertNotificationEvents, type RuleRow } from "../db/notifications";
import { ruleAppliesTo } from "../domain/notification";
import { send } from "../customer/outbox";
import { classifyResponse } from "../domain/backoff";
import { ulid } from "../domain/ids";
import { iso } from "../domain/time";
import { settings } from "../env";
import { requireScope } from "./auth";
import { amount } from "./entitlement-schemas";
import type { AppEnv } from "./context";
import { metadataField } from "./schemas";
import { refuseConfigGrowth } from "./config-budget";
import { ApiError, errorResponses } from "./errors";
import { listParam, PageQuery, page, paginated, sortQuery, sortRows } from "./pagination";
import { RULE_TEST_ANNOTATION, samplePayload } from "./notification-sample";

const ThresholdSchema = z
  .object({ type: z.enum(["usage_value", "usage_percentage", "balance_value", "NUMBER", "PERCENT"]), value: amount().min(0) })
  .openapi("NotificationRuleBalanceThresholdValue");

const RuleCreate = z
  .discriminatedUnion("type", [
    z.object({
      type: z.literal("entitlements.balance.threshold"),
      name: z.string().min(1).max(256),
      disabled: z.boolean().optional(),
      metadata: z.record(z.string(), z.string()).nullable().optional(),
      thresholds: z.array(ThresholdSchema).min(1).max(10),
      channels: z.array(z.string().min(1)).min(1).max(5),
      features: z.array(z.string().min(1)).min(1).max(20).optional(),
    }),
    z.object({
      type: z.literal("entitlements.reset"),
      name: z.string().min(1).max(256),
      disabled: z.boolean().optional(),
      metadata: z.record(z.string(), z.string()).nullable().optional(),
      channels: z.array(z.string().min(1)).min(1).max(5),
      features: z.array(z.string().min(1)).min(1).max(20).optional(),
    }),
  ])
  .openapi("NotificationRuleCreateRequest");

export const RuleSchema = z
  .object({
    id: z.string(),
    type: z.enum(["entitlements.balance.threshold", "entitlements.reset"]),
    name: z.string(),
    disabled: z.boolean(),
    channels: z.array(z.object({ id: z.string(), type: z.literal("WEBHOOK") })),
    thresholds: z.array(ThresholdSchema).optional(),
    features: z.array(z.object({ id: z.string(), key: z.string() })).optional(),
    metadata: z.record(z.string(), z.string()).nullable().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
    deletedAt: z.string().optional(),
  })
  .openapi("NotificationRule");

export const toRuleApi = (r: RuleRow, keys: ReadonlyMap<string, string> = new Map()) => ({
  id: r.id,
  type: r.type as "entitlements.balance.threshold" | "entitlements.reset",
  name: r.name,
  disabled: r.disabled,
  channels: r.channels.map((id) => ({ id, type: "WEBHOOK" as const })),
  ...(r.type === "entitlements.balance.threshold" ? { thresholds: r.thresholds as z.infer<typeof ThresholdSchema>[] } : {}),
  ...(r.features.length ? { features: r.features.map((id) => ({ id, key: keys.get(id) ?? id })) } : {}),
  ...metadataField(r.metadata),
  createdAt: iso(r.createdAt),
  updatedAt: iso(r.updatedAt),
  ...(r.deletedAt !== null ? { deletedAt: iso(r.deletedAt) } : {}),
});

/** Channels must exist in the namespace; features are stored by id, accepted by id or key. */
async function resolve(env: AppEnv["Bindings"], namespace: string, body: z.infer<typeof RuleCreate>) {
  const db = database(env.DB);
  const known = new Set((await listChannelsQuery(db, namespace)).map((ch) => ch.id));
  const errors: { field: string; message: string }[] = [];
  body.channels.forEach((id, i) => known.has(id) || errors.push({ field: `channels.${i}`, message: `no notification channel ${id}` }));
  const features: string[] = [];
  const keys = new Map<string, string>();
  for (const [i, f] of (body.features ?? []).entries()) {
    const row = await findFeature(db, namespace, f);
    if (!row) errors.push({ field: `features.${i}`, message: `no feature ${f}` });
    else {
      features.push(row.id);
      keys.set(row.id, row.key);
    }
  }
  if (errors.length) throw new ApiError("validation_failed", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
  return { features, keys };
}

/** What a create or a replace sets (PUT replaces every field, as OpenMeter's does). */
function fromBody(body: z.infer<typeof RuleCreate>, features: string[], now: number) {
  return {
    type: body.type,
    name: body.name,
    disabled: body.disabled ?? false,
    channels: [...new Set(body.channels)],
    features,
    thresholds: body.type === "entitlements.balance.threshold" ? body.thresholds : [],
    metadata: body.metadata ?? null,
    updatedAt: now,
  };
}

/** Feature id → key for the rules' `features` (archived features included: a rule may still name one). */
export async function featureKeys(env: AppEnv["Bindings"], namespace: string): Promise<Map<string, string>> {
  return new Map((await listFeatures(database(env.DB), namespace, { includeArchived: true })).map((f) => [f.id, f.key]));
}

/**
 * The list's `feature` filter: a rule matches when it would fire for one of the features named
 * (by id, or by key — archived features with that key included), so a rule without a feature
 * list, which applies to every feature, matches too.
 */
function appliesToAny(rule: RuleRow, named: readonly string[], keys: ReadonlyMap<string, string>): boolean {
  const def = { ...toRuleDef(rule), disabled: false };
  return named.some((f) => ruleAppliesTo(def, f, f) || [...keys].some(([id, key]) => key === f && ruleAppliesTo(def, id, key)));
}

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const Id = z.object({ ruleId: z.string().min(1).max(64) });

export const rules = new OpenAPIHono<AppEnv>();

rules.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/notification/rules",
    summary: "List notification rules",
    tags: ["Notifications"],
    middleware: [requireScope("read")] as const,
    request: {
      query: PageQuery.extend({
        includeDisabled: z.enum(["true", "false"]).optional(),
        includeDeleted: z.enum(["true", "false"]).optional().openapi({ description: "Deleted rules too, with their deletedAt." }),
        channel: listParam(20),
        feature: listParam(20).openapi({ description: "Feature ids or keys: the rules that apply to one of them, rules without a feature list included." }),
        ...sortQuery(["id", "type", "createdAt", "updatedAt"], "id (the default), type, createdAt or updatedAt; ties by id."),
      }),
    },
    responses: { 200: { description: "Rules", content: json(paginated(RuleSchema, "NotificationRulePaginatedResponse")) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const namespace = c.get("principal").namespace;
    const all = await listRulesQuery(database(c.env.DB), namespace, q.includeDeleted === "true");
    const keys = all.some((r) => r.features.length) || q.feature.length ? await featureKeys(c.env, namespace) : new Map<string, string>();
    const by = q.orderBy ?? "id";
    const rows = sortRows(
      all.filter(
        (r) =>
          (q.includeDisabled === "true" || !r.disabled) &&
          (q.channel.length === 0 || r.channels.some((ch) => q.channel.includes(ch))) &&
          (q.feature.length === 0 || appliesToAny(r, q.feature, keys)),
      ),
      (r) => (by === "type" ? r.type : by === "createdAt" ? r.createdAt : by === "updatedAt" ? r.updatedAt : r.id),
      q.order ?? "ASC",
    );
    return c.json(page(rows.map((r) => toRuleApi(r, keys)), q), 200);
  },
);

rules.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/notification/rules",
    summary: "Create a notification rule",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: json(RuleCreate) } },
    responses: { 201: { description: "Created", content: json(RuleSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "conflict") },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const namespace = c.get("principal").namespace;
    const { features, keys } = await resolve(c.env, namespace, body);
    const now = Date.now();
    const row: RuleRow = { id: ulid(now), namespace, createdAt: now, deletedAt: null, ...fromBody(body, features, now) };
    await refuseConfigGrowth(database(c.env.DB), namespace, "rules", toRuleDef(row));
    await saveRule(database(c.env.DB), row);
    forgetNamespaceConfig(namespace);
    return c.json(toRuleApi(row, keys), 201);
  },
);

async function mustFind(env: AppEnv["Bindings"], namespace: string, id: string, includeDeleted = false): Promise<RuleRow> {
  const row = await findRule(database(env.DB), namespace, id, includeDeleted);
  if (!row) throw new ApiError("not_found", `no notification rule ${id}`);
  return row;
}

rules.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/notification/rules/{ruleId}",
    summary: "Get a notification rule",
    tags: ["Notifications"],
    middleware: [requireScope("read")] as const,
    request: { params: Id },
    responses: { 200: { description: "Rule", content: json(RuleSchema) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const row = await mustFind(c.env, namespace, c.req.valid("param").ruleId, true);
    return c.json(toRuleApi(row, row.features.length ? await featureKeys(c.env, namespace) : undefined), 200);
  },
);

rules.openapi(
  createRoute({
    method: "put",
    path: "/api/v1/notification/rules/{ruleId}",
    summary: "Replace a notification rule",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: { params: Id, body: { required: true, content: json(RuleCreate) } },
    responses: { 200: { description: "Updated", content: json(RuleSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const current = await mustFind(c.env, namespace, c.req.valid("param").ruleId);
    const body = c.req.valid("json");
    const { features, keys } = await resolve(c.env, namespace, body);
    const row: RuleRow = { ...current, ...fromBody(body, features, Date.now()) };
    await refuseConfigGrowth(database(c.env.DB), namespace, "rules", toRuleDef(row));
    await saveRule(database(c.env.DB), row);
    forgetNamespaceConfig(namespace);
    return c.json(toRuleApi(row, keys), 200);
  },
);

rules.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/notification/rules/{ruleId}",
    summary: "Delete a notification rule",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: { params: Id },
    responses: { 204: { description: "Deleted" }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const current = await mustFind(c.env, namespace, c.req.valid("param").ruleId);
    const now = Date.now();
    await saveRule(database(c.env.DB), { ...current, deletedAt: now, updatedAt: now });
    forgetNamespaceConfig(namespace);
    return c.body(null, 204);
  },
);

rules.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/notification/rules/{ruleId}/test",
    summary: "Send a test notification to the rule's channels (one signed attempt each, not retried; kept as an event)",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: { params: Id },
    responses: { 201: { description: "Sent; deliveryStatus tells each channel's answer", content: json(z.record(z.string(), z.unknown())) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const rule = await mustFind(c.env, namespace, c.req.valid("param").ruleId);
    const channels = (await listChannelsQuery(database(c.env.DB), namespace)).filter((ch) => rule.channels.includes(ch.id)).map(toChannelDef);
    const now = Date.now();
    const id = ulid(now);
    const feature = rule.features.length ? await findFeature(database(c.env.DB), namespace, rule.features[0]!) : undefined;
    const payload = samplePayload(rule, feature, id, now);
    const body = JSON.stringify(payload);
    const deliveryStatus = await Promise.all(
      channels.map(async (ch) => {
        const a = await send(ch, id, body, fetch, settings(c.env).WEBHOOK_TIMEOUT_MS);
        const ok = classifyResponse(a.status) === "success";
        return {
          channel: { id: ch.id, type: "WEBHOOK" as const },
          state: ok ? "SUCCESS" : "FAILED",
          reason: typeof a.status === "number" ? `receiver answered ${a.status}` : `${a.status}: ${a.body}`,
          updatedAt: iso(Date.now()),
          attempts: [{ state: ok ? "SUCCESS" : "FAILED", timestamp: iso(Date.now()), response: { ...(typeof a.status === "number" ? { statusCode: a.status } : {}), body: a.body, durationMs: a.durationMs } }],
        };
      }),
    );
    const keys = rule.features.length ? await featureKeys(c.env, namespace) : undefined;
    // OpenMeter marks a test event with this annotation; its payload has the real payload's shape.
    const annotations = { [RULE_TEST_ANNOTATION]: true };
    // Kept like any notification event (as OpenMeter keeps it), so GET /notification/events shows it.
    const { subject, feature: f } = payload.data;
    await upsertNotificationEvents(database(c.env.DB), [
      { id, namespace, ruleId: rule.id, type: rule.type, subject: subject.key, featureKey: f.key, featureId: f.id, createdAt: now, payload, deliveries: deliveryStatus, annotations },
    ]);
    return c.json({ id, type: rule.type, createdAt: iso(now), rule: toRuleApi(rule, keys), deliveryStatus, payload, annotations }, 201);
  },
);
