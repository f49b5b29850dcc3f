import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { database } from "../db/client";
import { forgetNamespaceConfig } from "../db/config";
import { archiveFeature, findFeature, insertFeature, listFeatures, toFeatureDef, type FeatureRow } from "../db/features";
import { findMeter } from "../db/meters";
import { BALANCE_AGGREGATIONS, isBalanceAggregation } from "../domain/entitlement";
import { renderFeature } from "../domain/feature";
import { filterProblem, FilterStringDoc, FilterStringSchema, type FilterString } from "../domain/group-filter";
import { ulid } from "../domain/ids";
import type { Aggregation } from "../domain/meter";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { FeatureSchema, Key, Metadata } from "./entitlement-schemas";
import { ApiError, errorResponses, invalidField, zodIssues } from "./errors";
import { refuseConfigGrowth } from "./config-budget";
import { pageOrArray, pageOrRange, paginated, rangeOf, sortRows } from "./pagination";

export function toFeatureApi(r: FeatureRow): z.infer<typeof FeatureSchema> {
  return renderFeature(r);
}

const FeatureCreate = z
  .object({
    key: Key,
    name: z.string().min(1).max(256),
    metadata: Metadata.optional(),
    meterSlug: Key.optional(),
    meterGroupByFilters: z.record(z.string().min(1).max(64), z.string().max(1024)).optional(),
    advancedMeterGroupByFilters: z.record(z.string(), FilterStringDoc).optional().openapi({
      description: "OpenMeter's FilterString per group-by key of the meter, applied with meterGroupByFilters (both must hold); the rules are the meter query's (README).",
    }),
    unitCost: z.unknown().optional().openapi({ description: "Not supported (400)." }),
  })
  .openapi("FeatureCreateInputs");

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });

const AdvancedFilters = z.record(z.string().min(1).max(64), FilterStringSchema);

/**
 * The body's advancedMeterGroupByFilters, checked against the recursive FilterString: the route's
 * schema (FilterStringDoc, what /openapi.json can show) does not look inside `$and`/`$or` and drops
 * unknown operators, so the raw body is read (the body gate has parsed it once already). Null when empty.
 */
async function advancedFilters(c: Context<AppEnv>): Promise<Record<string, FilterString> | null> {
  const raw = (await c.req.json<Record<string, unknown>>()).advancedMeterGroupByFilters;
  if (raw === undefined || raw === null) return null;
  const parsed = AdvancedFilters.safeParse(raw);
  if (!parsed.success) {
    const errors = zodIssues(parsed.error, "advancedMeterGroupByFilters.");
    throw new ApiError("validation_failed", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
  }
  const problem = filterProblem(Object.entries(parsed.data));
  if (problem) invalidField("advancedMeterGroupByFilters", problem);
  return Object.keys(parsed.data).length ? parsed.data : null;
}
const IdOrKey = z.object({ featureId: z.string().min(1).max(64).openapi({ description: "The feature's id, or the key of a live feature." }) });

export const features = new OpenAPIHono<AppEnv>();

features.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/features",
    summary: "Create a feature",
    description: `A feature is metered when it names a meter (meterSlug). Only meters with ${BALANCE_AGGREGATIONS.join(", ")} aggregation can back a metered feature, as in OpenMeter. meterGroupByFilters keys must be group-by keys of that meter.`,
    tags: ["Features"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: json(FeatureCreate) } },
    responses: { 201: { description: "Created", content: json(FeatureSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "conflict") },
  }),
  async (c) => {
    const body = c.req.valid("json");
    if (body.unitCost !== undefined) invalidField("unitCost", "not supported");
    const namespace = c.get("principal").namespace;
    const db = database(c.env.DB);
    const filters = body.meterGroupByFilters && Object.keys(body.meterGroupByFilters).length ? body.meterGroupByFilters : null;
    const advanced = await advancedFilters(c);
    if (body.meterSlug !== undefined) {
      const meter = await findMeter(db, namespace, body.meterSlug);
      if (!meter || meter.slug !== body.meterSlug) invalidField("meterSlug", `no meter ${body.meterSlug}`);
      const aggregation = meter.aggregation as Aggregation;
      if (!isBalanceAggregation(aggregation)) {
        invalidField("meterSlug", `meter ${meter.slug} aggregates with ${aggregation}; only meters with ${BALANCE_AGGREGATIONS.join(", ")} aggregation can back a metered feature`);
      }
      for (const [field, list] of [["meterGroupByFilters", filters], ["advancedMeterGroupByFilters", advanced]] as const) {
        for (const k of Object.keys(list ?? {})) {
          // Own keys: `in` also finds Object.prototype's (a filter on "toString" passed for any meter).
          if (!Object.hasOwn(meter.groupBy, k)) invalidField(`${field}.${k}`, `${k} is not a group by key of meter ${meter.slug} (it has: ${Object.keys(meter.groupBy).join(", ") || "none"})`);
        }
      }
    } else if (filters || advanced) {
      invalidField(filters ? "meterGroupByFilters" : "advancedMeterGroupByFilters", "only a metered feature (with meterSlug) can filter by group");
    }
    const now = Date.now();
    const row: FeatureRow = {
      id: ulid(now),
      namespace,
      key: body.key,
      name: body.name,
      meterSlug: body.meterSlug ?? null,
      meterGroupByFilters: filters,
      advancedMeterGroupByFilters: advanced,
      metadata: body.metadata ?? null,
      createdAt: now,
      updatedAt: now,
      archivedAt: null,
    };
    await refuseConfigGrowth(db, namespace, "features", toFeatureDef(row));
    if (!(await insertFeature(db, row))) throw new ApiError("conflict", `a feature with key ${body.key} already exists; archive it first to reuse the key`);
    forgetNamespaceConfig(namespace);
    return c.json(toFeatureApi(row), 201);
  },
);

features.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/features",
    summary: "List features",
    tags: ["Features"],
    middleware: [requireScope("read")] as const,
    request: {
      query: z.object({
        meterSlug: z.union([z.string(), z.array(z.string()).max(50)]).optional().openapi({ description: "Only features of these meters (repeat the parameter)." }),
        includeArchived: z.enum(["true", "false"]).default("false"),
        ...pageOrRange(1000, 100),
        order: z.enum(["ASC", "DESC"]).default("ASC"),
        orderBy: z.enum(["id", "key", "name", "createdAt", "updatedAt"]).default("key"),
      }),
    },
    responses: {
      200: { description: "Features, by key unless orderBy says otherwise", content: json(z.union([z.array(FeatureSchema), paginated(FeatureSchema, "FeaturePaginatedResponse")])) },
      ...errorResponses("validation_failed", "unauthenticated", "forbidden"),
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const slugs = q.meterSlug === undefined ? undefined : Array.isArray(q.meterSlug) ? q.meterSlug : [q.meterSlug];
    const rows = await listFeatures(database(c.env.DB), c.get("principal").namespace, { includeArchived: q.includeArchived === "true", meterSlugs: slugs });
    const sorted = sortRows(rows, (r) => r[q.orderBy], q.order);
    const { offset, limit } = rangeOf(q);
    return c.json(pageOrArray(q, sorted.slice(offset, offset + limit).map(toFeatureApi), sorted.length), 200);
  },
);

features.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/features/{featureId}",
    summary: "Get a feature by id or key",
    tags: ["Features"],
    middleware: [requireScope("read")] as const,
    request: { params: IdOrKey },
    responses: { 200: { description: "Feature", content: json(FeatureSchema) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const { featureId } = c.req.valid("param");
    const row = await findFeature(database(c.env.DB), c.get("principal").namespace, featureId);
    if (!row) throw new ApiError("not_found", `no feature ${featureId}`);
    return c.json(toFeatureApi(row), 200);
  },
);

features.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/features/{featureId}",
    summary: "Archive a feature",
    description: "Archived features cannot get new entitlements; existing entitlements are unaffected. The key can then be reused by a new feature. Archiving twice is a no-op.",
    tags: ["Features"],
    middleware: [requireScope("admin")] as const,
    request: { params: IdOrKey },
    responses: { 204: { description: "Archived" }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const { featureId } = c.req.valid("param");
    const namespace = c.get("principal").namespace;
    const db = database(c.env.DB);
    const row = await findFeature(db, namespace, featureId);
    if (!row) throw new ApiError("not_found", `no feature ${featureId}`);
    if (row.archivedAt === null) {
      await archiveFeature(db, namespace, row.id, Date.now());
      forgetNamespaceConfig(namespace);
    }
    return c.body(null, 204);
  },
);
