import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { customer, withConfig } from "../customer/client";
import type { CustomerDO, Identity } from "../customer/do";
import type { ConfigRef, StaleConfig } from "../customer/meters";
import type { Result } from "../customer/entitlements";
import { database } from "../db/client";
import { cachedNamespaceConfig, readNamespaceConfig, type NamespaceConfig } from "../db/config";
import { forgetEntitlementIndex, indexEntitlement, markEntitlementDeleted } from "../db/entitlement-index";
import { findFeature } from "../db/features";
import { forgetGrantIndex, indexGrant } from "../db/grant-index";
import { findMeter } from "../db/meters";
import { subjectKeyById } from "../db/subjects";
import { isBalanceAggregation, type EntitlementCreate } from "../domain/entitlement";
import { subjectKey } from "../domain/cloudevent";
import { ulid, ULID_PATTERN } from "../domain/ids";
import type { Aggregation } from "../domain/meter";
import { settings } from "../env";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { EntitlementCreateSchema, EntitlementSchema, EntitlementValueSchema, ms, toEntitlementApi, unwrap, type EntitlementCreateBody } from "./entitlement-schemas";
import { ApiError, errorResponses } from "./errors";

/**
 * Entitlements of a subject (OpenMeter v1 paths). They live in the subject's Durable Object: one RPC
 * per request. `{subjectIdOrKey}` is the subject key; a subject id (ULID, from GET /api/v1/subjects)
 * is looked up in D1 only when no subject has that key, so the common case costs no D1 read.
 */

/** Events may be stamped up to 5 minutes ahead; a `time` that close to now means now. */
const TIME_SKEW_MS = 5 * 60_000;

export const namespaceConfig = (c: Context<AppEnv>): Promise<NamespaceConfig> =>
  cachedNamespaceConfig(database(c.env.DB), c.get("principal").namespace, settings(c.env).CONFIG_CACHE_SECONDS);

/** Runs `fn` against the subject named by key, or by id when no subject has that key; answers the value and the key used. */
export async function onSubject<T>(c: Context<AppEnv>, param: string, fn: (id: Identity) => Promise<Result<T>>): Promise<{ value: T; subject: string }> {
  const namespace = c.get("principal").namespace;
  const first = await fn({ namespace, subject: param });
  if (!first.ok && first.missing === "subject" && ULID_PATTERN.test(param)) {
    const key = await subjectKeyById(database(c.env.DB), namespace, param);
    if (key !== undefined) return { value: unwrap(await fn({ namespace, subject: key })), subject: key };
  }
  return { value: unwrap(first), subject: param };
}

const stub = (c: Context<AppEnv>, id: Identity) => customer(c.env, id);
const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const Subject = subjectKey;
const SubjectParam = z.object({ subjectIdOrKey: Subject });
const EntParam = SubjectParam.extend({ entitlementId: z.string().min(1).max(64) });
const EntOrFeatureParam = SubjectParam.extend({ entitlementIdOrFeatureKey: z.string().min(1).max(64) });
const Bool = z.enum(["true", "false"]).default("false");

export const entitlements = new OpenAPIHono<AppEnv>();

entitlements.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements",
    summary: "Create an entitlement for a subject",
    description:
      "Types metered, boolean and static, as in OpenMeter. A subject has at most one live entitlement per feature (409). " +
      "Metered entitlements copy the feature's meter and meterGroupByFilters now; usagePeriod.anchor, measureUsageFrom and the " +
      "issueAfterReset grant's effectiveAt are truncated to the minute (usage is stored per minute). The subject need not have sent events yet.",
    tags: ["Entitlements"],
    middleware: [requireScope("admin")] as const,
    request: { params: SubjectParam, body: { required: true, content: json(EntitlementCreateSchema) } },
    responses: { 201: { description: "Created", content: json(EntitlementSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const r = await createIndexed(c, c.req.valid("param").subjectIdOrKey, c.req.valid("json"), (s, id, cfg, input) => s.createEntitlement(id, cfg, input));
    return c.json(toEntitlementApi(r.value, r.subject), 201);
  },
);

type Create<T> = (s: DurableObjectStub<CustomerDO>, id: Identity, config: ConfigRef, input: EntitlementCreate) => Promise<Result<T> | StaleConfig>;

/**
 * Creates the entitlement `body` describes on the subject through `create` (a create or an override).
 * The index rows (the entitlement's, its issueAfterReset grant's) are written before the object acts,
 * and freed only on a definite refusal: after an error the entitlement and grant may exist.
 */
async function createIndexed<T>(c: Context<AppEnv>, subjectIdOrKey: string, body: EntitlementCreateBody, create: Create<T>): Promise<{ value: T; subject: string }> {
  const namespace = c.get("principal").namespace;
  const db = database(c.env.DB);
  let subject = subjectIdOrKey;
  if (ULID_PATTERN.test(subject)) subject = (await subjectKeyById(db, namespace, subject)) ?? subject;
  const input = await resolveCreate(c, body);
  // A fresh read: the feature's meter may be younger than this isolate's cached definitions.
  const config = await readNamespaceConfig(db, namespace);
  const grantId = input.metered?.defaultGrantId;
  if (grantId) await indexGrant(db, { id: grantId, namespace, subject, createdAt: Date.now(), entitlementId: input.id });
  await indexEntitlement(db, { id: input.id, namespace, subject, featureId: input.feature.id, featureKey: input.feature.key, type: input.type, createdAt: Date.now(), deletedAt: null });
  const id = { namespace, subject };
  const r = await withConfig(config, (cfg) => create(stub(c, id), id, cfg, input));
  if (!r.ok) {
    if (grantId) await forgetGrantIndex(db, namespace, [grantId]).catch(() => {});
    await forgetEntitlementIndex(db, namespace, input.id).catch(() => {});
  }
  return { value: unwrap(r), subject };
}

/** The object has deleted it: a failed index write must not turn that into a 500 (the namespace list skips and repairs the row). */
const indexDeletion = (c: Context<AppEnv>, id: string) =>
  markEntitlementDeleted(database(c.env.DB), c.get("principal").namespace, id, Date.now()).catch((e) => console.error("entitlement index: marking a deletion failed", e));

entitlements.openapi(
  createRoute({
    method: "put",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/override",
    summary: "Override a subject's entitlement",
    description:
      "As OpenMeter: creates a new entitlement from the body and deletes the live one named (by id or feature key) in the same " +
      "transaction of the subject's Durable Object, so the subject is never without one. The body is a create request for the same " +
      "feature (400 otherwise); 404 when no live entitlement has that id or feature key. The new entitlement starts its own usage " +
      "(measureUsageFrom, default now), grants and thresholds; the old one stays listed with includeDeleted=true.",
    tags: ["Entitlements"],
    middleware: [requireScope("admin")] as const,
    request: { params: EntOrFeatureParam, body: { required: true, content: json(EntitlementCreateSchema) } },
    responses: { 201: { description: "The new entitlement", content: json(EntitlementSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const r = await createIndexed(c, p.subjectIdOrKey, c.req.valid("json"), (s, id, cfg, input) => s.overrideEntitlement(id, cfg, p.entitlementIdOrFeatureKey, input));
    await indexDeletion(c, r.value.replaced);
    return c.json(toEntitlementApi(r.value.entitlement, r.subject), 201);
  },
);

/** The feature (and its meter) a create request names, checked and copied into the request. */
async function resolveCreate(c: Context<AppEnv>, body: EntitlementCreateBody): Promise<EntitlementCreate> {
  const namespace = c.get("principal").namespace;
  const db = database(c.env.DB);
  const ref = body.featureId ?? body.featureKey!;
  const feature = await findFeature(db, namespace, ref);
  if (!feature || (body.featureKey !== undefined && feature.key !== body.featureKey)) throw new ApiError("not_found", `no feature ${ref}`);
  if (feature.archivedAt !== null) throw new ApiError("validation_failed", `feature ${feature.key} is archived: it cannot get new entitlements`);
  const id = ulid();
  const usagePeriod = body.usagePeriod ? { interval: body.usagePeriod.interval, anchor: body.usagePeriod.anchor ? ms(body.usagePeriod.anchor) : null } : null;
  const base = { id, type: body.type, feature: { id: feature.id, key: feature.key }, metadata: body.metadata ?? null, usagePeriod, config: null, metered: null };
  if (body.type === "static") return { ...base, config: body.config };
  if (body.type === "boolean") return base;
  if (feature.meterSlug === null) throw new ApiError("validation_failed", `feature ${feature.key} has no meter: a metered entitlement needs a metered feature`);
  const meter = await findMeter(db, namespace, feature.meterSlug);
  if (!meter) throw new ApiError("validation_failed", `meter ${feature.meterSlug} of feature ${feature.key} no longer exists`);
  const aggregation = meter.aggregation as Aggregation;
  if (!isBalanceAggregation(aggregation)) throw new ApiError("validation_failed", `meter ${meter.slug} aggregates with ${aggregation}, which cannot back a metered entitlement`);
  const mf = body.measureUsageFrom;
  return {
    ...base,
    metered: {
      meter: { id: meter.id, slug: meter.slug, aggregation },
      filters: feature.meterGroupByFilters ?? {},
      ...(feature.advancedMeterGroupByFilters ? { advancedFilters: Object.entries(feature.advancedMeterGroupByFilters) } : {}),
      isSoftLimit: body.isSoftLimit ?? false,
      preserveOverageAtReset: body.preserveOverageAtReset ?? false,
      issueAfterReset: body.issueAfterReset ?? null,
      issueAfterResetPriority: body.issueAfterResetPriority ?? null,
      defaultGrantId: body.issueAfterReset ? ulid() : null,
      measureUsageFrom: mf === undefined ? null : mf === "NOW" || mf === "CURRENT_PERIOD_START" ? mf : ms(mf),
    },
  };
}

entitlements.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements",
    summary: "List a subject's entitlements",
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: { params: SubjectParam, query: z.object({ includeDeleted: Bool }) },
    responses: { 200: { description: "Entitlements (empty for a subject that has stored nothing)", content: json(z.array(EntitlementSchema)) }, ...errorResponses("unauthenticated", "forbidden") },
  }),
  async (c) => {
    const { subjectIdOrKey } = c.req.valid("param");
    const includeDeleted = c.req.valid("query").includeDeleted === "true";
    const config = await namespaceConfig(c);
    let subject = subjectIdOrKey;
    const list = async (id: Identity) => withConfig(config, (cfg) => stub(c, id).listEntitlements(id, cfg, includeDeleted));
    let rows = await list({ namespace: c.get("principal").namespace, subject });
    if (rows.length === 0 && ULID_PATTERN.test(subject)) {
      const key = await subjectKeyById(database(c.env.DB), c.get("principal").namespace, subject);
      if (key !== undefined) rows = await list({ namespace: c.get("principal").namespace, subject: (subject = key) });
    }
    return c.json(rows.map((r) => toEntitlementApi(r, subject)), 200);
  },
);

entitlements.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}",
    summary: "Get an entitlement",
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: { params: EntParam },
    responses: { 200: { description: "Entitlement", content: json(EntitlementSchema) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const config = await namespaceConfig(c);
    const r = await onSubject(c, p.subjectIdOrKey, (id) => withConfig(config, (cfg) => stub(c, id).getEntitlement(id, cfg, p.entitlementId)));
    return c.json(toEntitlementApi(r.value, r.subject), 200);
  },
);

entitlements.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}",
    summary: "Delete an entitlement",
    description: "Access ends now; the entitlement stays listed with includeDeleted=true. Its grants are kept but can no longer be voided.",
    tags: ["Entitlements"],
    middleware: [requireScope("admin")] as const,
    request: { params: EntParam },
    responses: { 204: { description: "Deleted" }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const config = await namespaceConfig(c);
    const r = await onSubject(c, p.subjectIdOrKey, (id) => withConfig(config, (cfg) => stub(c, id).deleteEntitlement(id, cfg, p.entitlementId)));
    // An object on older code answers null: the namespace list skips and repairs the row.
    if (r.value) await indexDeletion(c, r.value.id);
    return c.body(null, 204);
  },
);

entitlements.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value",
    summary: "Get an entitlement's value (hasAccess, balance, usage, overage)",
    description:
      "Exact and read-your-writes: every event accepted before this call is in it. Served by the subject's Durable Object from running " +
      "counters. Without `time` (or with a `time` up to 5 minutes ahead) the value is now; a past `time` is computed from the stored minute " +
      "buckets of the usage period that contained it. Like OpenMeter, the instant is rounded up to the next minute.",
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: { params: EntOrFeatureParam, query: z.object({ time: z.iso.datetime({ offset: true }).optional() }) },
    responses: { 200: { description: "Value", content: json(EntitlementValueSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    const now = Date.now();
    let time: number | null = q.time === undefined ? null : ms(q.time);
    if (time !== null && time > now + TIME_SKEW_MS) throw new ApiError("validation_failed", "time: must not be in the future", { errors: [{ field: "time", message: "must not be in the future" }] });
    if (time !== null && time >= now) time = null;
    const config = await namespaceConfig(c);
    const r = await onSubject(c, p.subjectIdOrKey, (id) => withConfig(config, (cfg) => stub(c, id).entitlementValue(id, cfg, p.entitlementIdOrFeatureKey, time)));
    const { entitlementId: _, ...value } = r.value;
    return c.json(value, 200);
  },
);

const ResetInput = z
  .object({
    effectiveAt: z.iso.datetime({ offset: true }).optional().openapi({ description: "Default now; truncated to the minute; not in the future, not before the last reset." }),
    retainAnchor: z.boolean().optional().openapi({ description: "Default false: the reset time becomes the usage period's anchor." }),
    preserveOverage: z.boolean().optional().openapi({ description: "Default: the entitlement's preserveOverageAtReset." }),
  })
  .openapi("ResetEntitlementUsageInput");

entitlements.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/reset",
    summary: "Reset an entitlement's usage",
    description: "Starts a new usage period at effectiveAt and rolls grants over (OpenMeter's reset). Periods also roll over by themselves at the anchor.",
    tags: ["Entitlements"],
    middleware: [requireScope("admin")] as const,
    request: { params: EntParam, body: { required: true, content: json(ResetInput) } },
    responses: { 204: { description: "Reset" }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const b = c.req.valid("json");
    const config = await namespaceConfig(c);
    const req = { at: b.effectiveAt ? ms(b.effectiveAt) : null, retainAnchor: b.retainAnchor ?? false, preserveOverage: b.preserveOverage ?? null };
    await onSubject(c, p.subjectIdOrKey, (id) => withConfig(config, (cfg) => stub(c, id).resetEntitlement(id, cfg, p.entitlementId, req)));
    return c.body(null, 204);
  },
);
