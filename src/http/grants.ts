import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { customer, withConfig } from "../customer/client";
import type { Result } from "../customer/entitlements";
import type { GrantRow } from "../customer/grants";
import { database } from "../db/client";
import { findGrantIndex, forgetGrantIndex, indexGrant, listGrantIndex, setGrantEntitlement, setGrantsUpdatedAt } from "../db/grant-index";
import { subjectKey } from "../domain/cloudevent";
import { ulid } from "../domain/ids";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { GrantCreateSchema, GrantSchema, ms, toGrantApi, unwrap } from "./entitlement-schemas";
import { namespaceConfig, onSubject } from "./entitlements";
import { ApiError, errorResponses } from "./errors";
import { listParam, pageOrArray, pageOrRange, paginated, rangeOf, sortRows } from "./pagination";

/**
 * Grants of metered entitlements. They live in the subject's Durable Object; D1 keeps only
 * grantId → subject (grant_index), because `DELETE /api/v1/grants/{grantId}` names no subject, with
 * the entitlement and updatedAt the namespace-wide list filters and orders by. The index row is
 * written before the grant, so a created grant can always be voided.
 */

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const Params = z.object({ subjectIdOrKey: subjectKey, entitlementIdOrFeatureKey: z.string().min(1).max(64) });

export const grants = new OpenAPIHono<AppEnv>();

grants.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants",
    summary: "Issue a grant for a metered entitlement",
    description:
      "Burn order as OpenMeter documents: priority (lower first), then nearest expiry, then creation. effectiveAt is truncated to the " +
      "minute and may not be before the current usage period. At a reset a grant keeps min(maxRolloverAmount, max(minRolloverAmount, balance)); " +
      "a minRolloverAmount above maxRolloverAmount (0 when left out) would never apply and is refused (400). " +
      "Recurring grants are not supported.",
    tags: ["Entitlements"],
    middleware: [requireScope("admin")] as const,
    request: { params: Params, body: { required: true, content: json(GrantCreateSchema) } },
    responses: { 201: { description: "Created", content: json(GrantSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const b = c.req.valid("json");
    if (b.recurrence !== undefined) {
      throw new ApiError("validation_failed", "recurrence: recurring grants are not supported; issue a grant per period, or use the entitlement's issueAfterReset", {
        errors: [{ field: "recurrence", message: "not supported" }],
      });
    }
    const namespace = c.get("principal").namespace;
    const db = database(c.env.DB);
    const config = await namespaceConfig(c);
    const input = {
      id: ulid(),
      amount: b.amount,
      priority: b.priority ?? 1,
      effectiveAt: ms(b.effectiveAt),
      expiration: b.expiration,
      minRolloverAmount: b.minRolloverAmount ?? 0,
      maxRolloverAmount: b.maxRolloverAmount ?? 0,
      metadata: b.metadata ?? null,
    };
    const { value: grant } = await onSubject<GrantRow>(c, p.subjectIdOrKey, async (id) => {
      await indexGrant(db, { id: input.id, namespace, subject: id.subject, createdAt: Date.now() });
      const r = await withConfig(config, (cfg) => customer(c.env, id).createGrant(id, cfg, p.entitlementIdOrFeatureKey, input));
      // Only a definite refusal frees the index row: after an error the grant may exist.
      if (!r.ok) await forgetGrantIndex(db, namespace, [input.id]).catch(() => {});
      return r;
    });
    // Best effort: without it the grant is still listed, but matches no feature filter.
    await setGrantEntitlement(db, namespace, grant.id, grant.entitlementId, grant.updatedAt).catch((e) => console.error("grant index: entitlement not recorded", e));
    return c.json(toGrantApi(grant), 201);
  },
);

grants.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants",
    summary: "List an entitlement's grants",
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: {
      params: Params,
      query: z.object({
        includeDeleted: z.enum(["true", "false"]).default("false").openapi({ description: "Also a deleted entitlement's grants, named by the entitlement's id (a feature key names the live one)." }),
        orderBy: z.enum(["id", "createdAt", "updatedAt"]).default("updatedAt"),
      }),
    },
    responses: { 200: { description: "Grants, voided ones included", content: json(z.array(GrantSchema)) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const { orderBy, includeDeleted } = c.req.valid("query");
    const { value: rows } = await onSubject<GrantRow[]>(c, p.subjectIdOrKey, async (id) => customer(c.env, id).listGrants(id, p.entitlementIdOrFeatureKey, includeDeleted === "true"));
    const sorted = sortRows(rows, (g) => (orderBy === "id" ? g.id : orderBy === "createdAt" ? g.createdAt : g.updatedAt), "ASC");
    return c.json(sorted.map(toGrantApi), 200);
  },
);

/** An object's answer, or `fallback` when it refused (e.g. an entitlement it no longer holds). */
const valueOr = <T>(r: Result<T>, fallback: T): T => (r.ok ? r.value : fallback);

// 25 values per filter keeps the statements under production's 100 bound parameters.
const ListAllQuery = z.object({
  feature: listParam(25).openapi({ description: "Feature keys or ids (repeat the parameter)." }),
  subject: listParam(25),
  includeDeleted: z.enum(["true", "false"]).default("false").openapi({ description: "Also the grants of deleted entitlements." }),
  // OpenMeter's 1,000 per page: a page reads each of its entitlements' grants from the subject's object
  // (a subrequest each), within the Workers Paid plan's 10,000 subrequests; its D1 queries do not grow with it.
  ...pageOrRange(1000, 100),
  order: z.enum(["ASC", "DESC"]).default("ASC"),
  orderBy: z.enum(["id", "createdAt", "updatedAt"]).default("updatedAt").openapi({ description: "updatedAt (the default): a grant is updated when created and when voided." }),
});

grants.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/grants",
    summary: "List the namespace's grants (OpenMeter)",
    description:
      "Voided grants included. With page or pageSize the answer is OpenMeter's paginated envelope; without, a plain array (offset/limit). " +
      "Grants issued before edgemeter recorded their entitlement in D1 (migration 0007) are listed but match no feature filter.",
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: { query: ListAllQuery },
    responses: {
      200: { description: "Grants", content: json(z.union([z.array(GrantSchema), paginated(GrantSchema, "GrantPaginatedResponse")])) },
      ...errorResponses("validation_failed", "unauthenticated", "forbidden"),
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const namespace = c.get("principal").namespace;
    const includeDeleted = q.includeDeleted === "true";
    const { rows, total } = await listGrantIndex(database(c.env.DB), namespace, {
      subjects: q.subject,
      features: q.feature,
      includeDeleted,
      orderBy: q.orderBy,
      order: q.order,
      ...rangeOf(q),
    });
    // One call per (subject, entitlement) on the page. Rows that name no entitlement (grants from
    // before migration 0007) are looked up among all of their subject's entitlements.
    const found = new Map<string, GrantRow>();
    const bySubject = Map.groupBy(rows, (r) => r.subject);
    const config = rows.some((r) => r.entitlementId === null) ? await namespaceConfig(c) : null;
    await Promise.all(
      [...bySubject].map(async ([subject, list]) => {
        const id = { namespace, subject };
        const stub = customer(c.env, id);
        const entitlements = new Set(list.map((r) => r.entitlementId).filter((e): e is string => e !== null));
        if (config && list.some((r) => r.entitlementId === null)) {
          for (const e of await withConfig(config, (cfg) => stub.listEntitlements(id, cfg, true))) entitlements.add(e.id);
        }
        for (const e of entitlements) {
          for (const g of valueOr<GrantRow[]>(await stub.listGrants(id, e, includeDeleted), [])) found.set(g.id, g);
        }
      }),
    );
    // A row whose grant the object does not hold (a create that failed after indexing) is left out. A row
    // whose updatedAt is behind its object's (a void whose D1 write failed, a row from older code) is
    // repaired after the answer, so the order catches up with the subject-scoped list's.
    const behind: { id: string; at: number }[] = [];
    const items = rows.flatMap((r) => {
      const g = found.get(r.id);
      if (g && g.updatedAt !== r.updatedAt) behind.push({ id: g.id, at: g.updatedAt });
      return g ? [{ ...toGrantApi(g), ...(r.deletedAt !== null ? { deletedAt: new Date(r.deletedAt).toISOString() } : {}) }] : [];
    });
    if (behind.length) c.executionCtx.waitUntil(setGrantsUpdatedAt(database(c.env.DB), namespace, behind).catch((e) => console.error("grant index repair failed", e)));
    return c.json(pageOrArray(q, items, total), 200);
  },
);

grants.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/grants/{grantId}",
    summary: "Void a grant",
    description:
      "The grant stops taking part in balances from `at` (default now; truncated to the minute; not in the future, not before the current " +
      "usage period). Usage already burned from it stays burned. Voiding twice answers 409.",
    tags: ["Entitlements"],
    middleware: [requireScope("admin")] as const,
    request: { params: z.object({ grantId: z.string().min(1).max(64) }), query: z.object({ at: z.iso.datetime({ offset: true }).optional() }) },
    responses: { 204: { description: "Voided" }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const { grantId } = c.req.valid("param");
    const { at } = c.req.valid("query");
    const namespace = c.get("principal").namespace;
    const row = await findGrantIndex(database(c.env.DB), namespace, grantId);
    if (!row) throw new ApiError("not_found", `no grant ${grantId}`);
    const id = { namespace, subject: row.subject };
    const config = await namespaceConfig(c);
    const r = await withConfig(config, (cfg) => customer(c.env, id).voidGrant(id, cfg, grantId, at ? ms(at) : null));
    if (!r.ok && r.missing === "subject") throw new ApiError("not_found", `no grant ${grantId}`);
    const updatedAt = unwrap(r);
    // The grant is voided (the object is the truth): a failed index write must not turn that into a 500,
    // whose retry would then meet 409; the namespace list repairs the row when it reads it.
    await setGrantsUpdatedAt(database(c.env.DB), namespace, [{ id: grantId, at: updatedAt }]).catch((e) => console.error("grant index: void not recorded", e));
    return c.body(null, 204);
  },
);
