import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { database } from "../db/client";
import { forgetNamespaceConfig } from "../db/config";
import { listFeatures } from "../db/features";
import { deleteMeter, findMeter, insertMeter, listMeters, METER_ORDER_BY, toMeterDef, updateMeter, type MeterRow } from "../db/meters";
import { ulid } from "../domain/ids";
import { compileJsonPath } from "../domain/jsonpath";
import { AGGREGATIONS, IMMUTABLE_METER_FIELDS, meterCreateSchema, meterUpdateSchema } from "../domain/meter";
import { iso } from "../domain/time";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ms } from "./entitlement-schemas";
import { optionalPage, pageRange } from "./pagination";
import { metadataField } from "./schemas";
import { ApiError, errorResponses } from "./errors";
import { refuseLiveEntitlements, refuseMeterInUse } from "./meter-in-use";
import { refuseConfigGrowth } from "./config-budget";

export const MeterSchema = z
  .object({
    id: z.string(),
    slug: z.string(),
    name: z.string(),
    description: z.string().optional(),
    metadata: z.record(z.string(), z.string()).nullable().optional(),
    aggregation: z.enum(AGGREGATIONS),
    eventType: z.string(),
    eventFrom: z.string().optional(),
    valueProperty: z.string().optional(),
    groupBy: z.record(z.string(), z.string()),
    createdAt: z.string(),
    updatedAt: z.string(),
    deletedAt: z.string().optional().openapi({ description: "Only on deleted meters, which only the list with includeDeleted=true shows." }),
  })
  .openapi("Meter");

export function toMeterApi(r: MeterRow) {
  return {
    id: r.id,
    slug: r.slug,
    name: r.name,
    ...(r.description !== null ? { description: r.description } : {}),
    ...metadataField(r.metadata),
    aggregation: r.aggregation as (typeof AGGREGATIONS)[number],
    eventType: r.eventType,
    ...(r.eventFrom !== null ? { eventFrom: iso(r.eventFrom) } : {}),
    ...(r.valueProperty !== null ? { valueProperty: r.valueProperty } : {}),
    groupBy: r.groupBy,
    createdAt: iso(r.createdAt),
    updatedAt: iso(r.updatedAt),
    ...(r.deletedAt !== null ? { deletedAt: iso(r.deletedAt) } : {}),
  };
}

/** Every JSONPath must be one this build can evaluate, or events would silently not count. */
function checkPaths(valueProperty: string | undefined, groupBy: Record<string, string> | undefined): void {
  const errors: { field: string; message: string }[] = [];
  if (valueProperty !== undefined) {
    const r = compileJsonPath(valueProperty);
    if (!r.ok) errors.push({ field: "valueProperty", message: r.reason });
  }
  for (const [k, p] of Object.entries(groupBy ?? {})) {
    const r = compileJsonPath(p);
    if (!r.ok) errors.push({ field: `groupBy.${k}`, message: r.reason });
  }
  if (errors.length) throw new ApiError("validation_failed", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
}

const ListQuery = z.object({
  ...optionalPage(1000, "Without page or pageSize, every meter."),
  order: z.enum(["ASC", "DESC"]).default("ASC"),
  orderBy: z.enum(Object.keys(METER_ORDER_BY) as [keyof typeof METER_ORDER_BY]).default("key").openapi({ description: "key (the slug, the default), name, aggregation, createdAt or updatedAt." }),
  includeDeleted: z.enum(["true", "false"]).default("false").openapi({ description: "Also deleted meters, with deletedAt." }),
});
const IdOrSlug = z.object({ meterIdOrSlug: z.string().min(1).max(64) });
const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });

export const meters = new OpenAPIHono<AppEnv>();

meters.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/meters",
    summary: "List meters",
    tags: ["Meters"],
    description: "A plain array, as OpenMeter's. Without page or pageSize, every meter; with either, that page (pageSize default 100).",
    middleware: [requireScope("read")] as const,
    request: { query: ListQuery },
    responses: { 200: { description: "Meters", content: json(z.array(MeterSchema)) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const q = c.req.valid("query");
    // The answer is a plain array with no totalCount (OpenMeter's shape): a client that asks for no
    // page gets every meter rather than a first page it cannot tell is partial.
    const range = pageRange(q);
    const rows = await listMeters(database(c.env.DB), c.get("principal").namespace, { includeDeleted: q.includeDeleted === "true", orderBy: q.orderBy, order: q.order, range });
    return c.json(rows.map(toMeterApi), 200);
  },
);

meters.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/meters",
    summary: "Create a meter; retained events of its type are metered too",
    tags: ["Meters"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: json(meterCreateSchema.openapi("MeterCreate")) } },
    responses: { 201: { description: "Created", content: json(MeterSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "conflict") },
  }),
  async (c) => {
    const body = c.req.valid("json");
    checkPaths(body.valueProperty, body.groupBy);
    const namespace = c.get("principal").namespace;
    const now = Date.now();
    const row: MeterRow = {
      id: ulid(now),
      namespace,
      slug: body.slug,
      name: body.name ?? body.slug,
      description: body.description ?? null,
      eventType: body.eventType,
      aggregation: body.aggregation,
      valueProperty: body.valueProperty ?? null,
      groupBy: body.groupBy ?? {},
      // zod accepts any number of fractional digits; parseRfc3339 reads at most 9: refuse, never drop the cutoff.
      eventFrom: body.eventFrom === undefined ? null : ms(body.eventFrom, "eventFrom"),
      metadata: body.metadata ?? null,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    };
    await refuseConfigGrowth(database(c.env.DB), namespace, "meters", toMeterDef(row));
    if (!(await insertMeter(database(c.env.DB), row))) throw new ApiError("conflict", `a meter with slug ${body.slug} already exists`);
    forgetNamespaceConfig(namespace);
    return c.json(toMeterApi(row), 201);
  },
);

async function mustFind(c: { env: AppEnv["Bindings"] }, namespace: string, idOrSlug: string): Promise<MeterRow> {
  const row = await findMeter(database(c.env.DB), namespace, idOrSlug);
  if (!row) throw new ApiError("not_found", `no meter ${idOrSlug}`);
  return row;
}

meters.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/meters/{meterIdOrSlug}",
    summary: "Get a meter by id or slug",
    tags: ["Meters"],
    middleware: [requireScope("read")] as const,
    request: { params: IdOrSlug },
    responses: { 200: { description: "Meter", content: json(MeterSchema) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => c.json(toMeterApi(await mustFind(c, c.get("principal").namespace, c.req.valid("param").meterIdOrSlug)), 200),
);

/**
 * 409 when the new groupBy drops a key that a live feature of the meter filters on: its entitlements
 * would stop counting the usage they count now, silently (a PUT that leaves groupBy out drops every
 * key). Archive the feature, or keep the key. An archived feature's entitlements keep counting with
 * the filters they copied, so the same holds while one of them is live (an archived feature's live
 * entitlement lost its usage, 5 to 0, to such an update): delete it first.
 */
async function keepFilteredKeys(c: Context<AppEnv>, namespace: string, slug: string, groupBy: Record<string, string>): Promise<void> {
  const archived = new Map<string, string>();
  for (const f of await listFeatures(database(c.env.DB), namespace, { includeArchived: true, meterSlugs: [slug] })) {
    const used = [...Object.keys(f.meterGroupByFilters ?? {}), ...Object.keys(f.advancedMeterGroupByFilters ?? {})];
    const dropped = used.find((k) => !Object.hasOwn(groupBy, k));
    if (dropped === undefined) continue;
    if (f.archivedAt !== null) archived.set(f.id, dropped);
    else throw new ApiError("conflict", `feature ${f.key} filters on group by key ${dropped}, which this update removes; keep the key, or archive the feature first`);
  }
  if (archived.size === 0) return;
  await refuseLiveEntitlements(c, namespace, slug, [...archived.keys()], "update", (row) =>
    `entitlement ${row.id} of subject ${row.subject} (feature ${row.featureKey}, archived) filters on a group by key this update removes; keep the key, or delete the entitlement first`,
  );
}

meters.openapi(
  createRoute({
    method: "put",
    path: "/api/v1/meters/{meterIdOrSlug}",
    summary: "Replace a meter's name, description, metadata and groupBy (re-meters retained events)",
    description:
      "As OpenMeter's MeterUpdate: the body replaces them, so a field left out is reset — name to the slug, description and metadata to none, " +
      "groupBy to {} (a groupBy change, re-metered as any other). The other fields of a meter may be sent back only unchanged.",
    tags: ["Meters"],
    middleware: [requireScope("admin")] as const,
    request: { params: IdOrSlug, body: { required: true, content: json(meterUpdateSchema.openapi("MeterUpdate")) } },
    responses: { 200: { description: "Updated", content: json(MeterSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const row = await mustFind(c, namespace, c.req.valid("param").meterIdOrSlug);
    const body = c.req.valid("json");
    const current = toMeterApi(row) as Record<string, unknown>;
    const changed = IMMUTABLE_METER_FIELDS.filter((f) => body[f] !== undefined && body[f] !== current[f]);
    if (changed.length) {
      throw new ApiError("validation_failed", `${changed.join(", ")} cannot be changed; create a new meter instead`, {
        errors: changed.map((f) => ({ field: f, message: "immutable" })),
      });
    }
    // PUT replaces (OpenMeter's MeterUpdate: name "defaults to the slug if not specified"): keeping the
    // stored value for a field left out would answer a meter the client did not describe.
    const groupBy = body.groupBy ?? {};
    checkPaths(undefined, groupBy);
    if (row.valueProperty !== null && Object.values(groupBy).includes(row.valueProperty)) {
      throw new ApiError("validation_failed", "a group by value cannot be the same as the value property");
    }
    await keepFilteredKeys(c, namespace, row.slug, groupBy);
    const next: MeterRow = {
      ...row,
      name: body.name ?? row.slug,
      description: body.description ?? null,
      metadata: body.metadata ?? null,
      groupBy,
      updatedAt: Date.now(),
    };
    await refuseConfigGrowth(database(c.env.DB), namespace, "meters", toMeterDef(next));
    await updateMeter(database(c.env.DB), next);
    forgetNamespaceConfig(namespace);
    return c.json(toMeterApi(next), 200);
  },
);

meters.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/meters/{meterIdOrSlug}",
    summary: "Delete a meter",
    description:
      "409 while a live feature uses the meter (archive it first), or a live entitlement of an archived feature does (delete it first), as OpenMeter refuses it.",
    tags: ["Meters"],
    middleware: [requireScope("admin")] as const,
    request: { params: IdOrSlug },
    responses: { 204: { description: "Deleted" }, ...errorResponses("unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const row = await mustFind(c, namespace, c.req.valid("param").meterIdOrSlug);
    await refuseMeterInUse(c, namespace, row.slug);
    await deleteMeter(database(c.env.DB), namespace, row.id, Date.now());
    forgetNamespaceConfig(namespace);
    return c.body(null, 204);
  },
);
