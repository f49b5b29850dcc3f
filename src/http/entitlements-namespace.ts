import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { customer, withConfig } from "../customer/client";
import type { EntitlementRecord } from "../customer/entitlements";
import { database } from "../db/client";
import { findEntitlementIndex, listEntitlementIndex, markEntitlementsDeleted } from "../db/entitlement-index";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { EntitlementSchema, toEntitlementApi, unwrap } from "./entitlement-schemas";
import { namespaceConfig } from "./entitlements";
import { ApiError, errorResponses } from "./errors";
import { listParam, pageOrArray, pageOrRange, paginated, rangeOf } from "./pagination";

/**
 * OpenMeter's namespace-wide entitlement routes, which name no subject. D1's entitlement_index says
 * which subject holds each entitlement; the entitlement itself is read from that subject's Durable
 * Object (one call per subject on a page). Entitlements created before the index existed are not
 * listed here; the subject-scoped routes serve them.
 */
export const namespaceEntitlements = new OpenAPIHono<AppEnv>();

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
// 25 values per filter keeps the statement under production's 100 bound parameters.
const ListQuery = z.object({
  subject: listParam(25),
  feature: listParam(25).openapi({ description: "Feature keys or ids (repeat the parameter)." }),
  entitlementType: listParam(3).refine((v) => v.every((t) => t === "metered" || t === "boolean" || t === "static"), "each must be metered, boolean or static"),
  excludeInactive: z.enum(["true", "false"]).optional().openapi({ description: "Accepted; every entitlement here is active from its creation until deleted." }),
  // OpenMeter's 1,000 per page: a page reads each of its subjects' objects (a subrequest each, twice when
  // an object lacks the current definitions), within the Workers Paid plan's 10,000 subrequests; its D1
  // queries do not grow with it (the list, its count, the definitions, one repair statement).
  ...pageOrRange(1000, 100),
  order: z.enum(["ASC", "DESC"]).default("ASC"),
  // An entitlement's updatedAt changes inside its subject's Durable Object (resets, period rollovers,
  // re-metering), which D1's index cannot follow; ordering by creation instead would answer another order.
  orderBy: z
    .enum(["createdAt", "updatedAt"])
    .default("createdAt")
    .refine((v) => v === "createdAt", "only createdAt: entitlements are listed by creation (an entitlement's updatedAt changes inside its subject's Durable Object, which the namespace-wide index cannot follow)")
    .openapi({ description: "createdAt (the default); updatedAt is refused (400)." }),
});

namespaceEntitlements.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/entitlements",
    summary: "List the namespace's live entitlements (OpenMeter)",
    description: "With page or pageSize the answer is OpenMeter's paginated envelope; without, a plain array (offset/limit).",
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: { query: ListQuery },
    responses: {
      200: { description: "Entitlements, oldest first unless order=DESC", content: json(z.union([z.array(EntitlementSchema), paginated(EntitlementSchema, "EntitlementPaginatedResponse")])) },
      ...errorResponses("validation_failed", "unauthenticated", "forbidden"),
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const namespace = c.get("principal").namespace;
    const { rows, total } = await listEntitlementIndex(database(c.env.DB), namespace, { subjects: q.subject, features: q.feature, types: q.entitlementType, order: q.order, ...rangeOf(q) });
    const config = await namespaceConfig(c);
    const bySubject = new Map<string, Map<string, EntitlementRecord>>();
    await Promise.all(
      [...new Set(rows.map((r) => r.subject))].map(async (subject) => {
        const id = { namespace, subject };
        const records = await withConfig(config, (cfg) => customer(c.env, id).listEntitlements(id, cfg, true));
        bySubject.set(subject, new Map(records.map((r) => [r.id, r])));
      }),
    );
    // Left out: a row whose entitlement the object does not hold (a create that failed after
    // indexing), and one the object has deleted while the index missed it (the delete's D1 write
    // failed, or an object or Worker on older code deleted it); the latter row is repaired.
    const stale: { id: string; at: number }[] = [];
    const items = rows.flatMap((r) => {
      const record = bySubject.get(r.subject)?.get(r.id);
      if (record?.deletedAt != null) stale.push({ id: r.id, at: record.deletedAt });
      return record && record.deletedAt == null ? [toEntitlementApi(record, r.subject)] : [];
    });
    if (stale.length) {
      const db = database(c.env.DB);
      c.executionCtx.waitUntil(markEntitlementsDeleted(db, namespace, stale).catch((e) => console.error("entitlement index repair failed", e)));
    }
    return c.json(pageOrArray(q, items, total), 200);
  },
);

namespaceEntitlements.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/entitlements/{entitlementId}",
    summary: "Get an entitlement by id, whoever's it is (OpenMeter)",
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: { params: z.object({ entitlementId: z.string().min(1).max(64) }) },
    responses: { 200: { description: "Entitlement", content: json(EntitlementSchema) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const { entitlementId } = c.req.valid("param");
    const namespace = c.get("principal").namespace;
    const row = await findEntitlementIndex(database(c.env.DB), namespace, entitlementId);
    if (!row) throw new ApiError("not_found", `no entitlement ${entitlementId}`);
    const id = { namespace, subject: row.subject };
    const config = await namespaceConfig(c);
    const r = await withConfig(config, (cfg) => customer(c.env, id).getEntitlement(id, cfg, row.id));
    return c.json(toEntitlementApi(unwrap(r), row.subject), 200);
  },
);
