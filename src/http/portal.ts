import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { database } from "../db/client";
import { insertPortalToken, invalidatePortalTokens, listPortalTokens, type PortalTokenRow } from "../db/portal";
import { subjectKey } from "../domain/cloudevent";
import { base64url, sha256Hex, ulid } from "../domain/ids";
import { SLUG_PATTERN } from "../domain/meter";
import { iso, parseRfc3339 } from "../domain/time";
import { authenticatePortal, forgetKey, PORTAL_TOKEN_PREFIX, portalKeyId, requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ApiError, errorResponses, invalidField } from "./errors";
import { findMeterDef, foldSpec, fromSearchParams, parseQueryRequest, QueryRequest, QueryResult, querySubjects, respond } from "./query";

/**
 * Consumer portal tokens (OpenMeter v1 paths): a backend mints a token for one subject and hands it to
 * that customer's browser, which may then read the subject's usage — GET /api/v1/portal/meters/{slug}/query,
 * nothing else. Only the token's SHA-256 is stored; the token is shown once.
 */

/** Lifetime when `expiresAt` is not given, and the longest allowed: a portal token lives in a browser. */
export const PORTAL_TOKEN_DEFAULT_TTL_MS = 24 * 3_600_000;
export const PORTAL_TOKEN_MAX_TTL_MS = 90 * 86_400_000;
/** Expired tokens stay listed (as expired) this long; then creating the subject's next token deletes them. */
const KEEP_EXPIRED_MS = 7 * 86_400_000;

const Slug = z.string().min(1).max(64).regex(SLUG_PATTERN, "a meter slug: lowercase letters and digits, separated by single underscores");

const PortalTokenCreate = z
  .object({
    subject: subjectKey,
    allowedMeterSlugs: z.array(Slug).max(100).optional().openapi({ description: "Only these meters may be queried; absent or empty: every meter (as OpenMeter)." }),
    expiresAt: z.iso.datetime({ offset: true }).optional().openapi({ description: "Default: 24 hours from now; at most 90 days ahead." }),
  })
  .openapi("PortalTokenCreate");

const PortalToken = z
  .object({
    id: z.string(),
    subject: z.string(),
    allowedMeterSlugs: z.array(z.string()).optional(),
    expiresAt: z.string(),
    expired: z.boolean(),
    createdAt: z.string(),
    token: z.string().optional().openapi({ description: "Only in the answer to its creation." }),
  })
  .openapi("PortalToken");

const toApi = (r: PortalTokenRow, now: number) => ({
  id: r.id,
  subject: r.subject,
  ...(r.allowedMeterSlugs ? { allowedMeterSlugs: r.allowedMeterSlugs } : {}),
  expiresAt: iso(r.expiresAt),
  expired: r.expiresAt <= now,
  createdAt: iso(r.createdAt),
});

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });

export const portal = new OpenAPIHono<AppEnv>();

portal.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/portal/tokens",
    summary: "Create a consumer portal token (shown once)",
    tags: ["Portal"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: json(PortalTokenCreate) } },
    responses: { 200: { description: "Created; `token` is never shown again", content: json(PortalToken) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const now = Date.now();
    const expiresAt = body.expiresAt === undefined ? now + PORTAL_TOKEN_DEFAULT_TTL_MS : parseRfc3339(body.expiresAt);
    if (expiresAt === null) invalidField("expiresAt", "must be an RFC 3339 date-time");
    if (expiresAt <= now) invalidField("expiresAt", "must be in the future");
    if (expiresAt > now + PORTAL_TOKEN_MAX_TTL_MS) invalidField("expiresAt", "must be at most 90 days ahead");
    const token = `${PORTAL_TOKEN_PREFIX}${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
    const row: PortalTokenRow = {
      id: ulid(now),
      namespace: c.get("principal").namespace,
      subject: body.subject,
      // OpenMeter reads an empty list as no restriction, not as "no meter".
      allowedMeterSlugs: body.allowedMeterSlugs?.length ? [...new Set(body.allowedMeterSlugs)] : null,
      tokenHash: await sha256Hex(token),
      expiresAt,
      createdAt: now,
      invalidatedAt: null,
    };
    await insertPortalToken(database(c.env.DB), row, now - KEEP_EXPIRED_MS);
    return c.json({ ...toApi(row, now), token }, 200);
  },
);

portal.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/portal/tokens",
    summary: "List consumer portal tokens, newest first (never the tokens themselves)",
    tags: ["Portal"],
    middleware: [requireScope("admin")] as const,
    request: { query: z.object({ limit: z.coerce.number().int().min(1).max(100).default(25) }) },
    responses: { 200: { description: "Tokens not invalidated; expired ones marked `expired`", content: json(z.array(PortalToken)) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const now = Date.now();
    const rows = await listPortalTokens(database(c.env.DB), c.get("principal").namespace, c.req.valid("query").limit);
    return c.json(rows.map((r) => toApi(r, now)), 200);
  },
);

portal.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/portal/tokens/invalidate",
    summary: "Invalidate portal tokens by id, by subject, or both",
    description: "Idempotent: answers 204 whether or not a token matched.",
    tags: ["Portal"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: json(z.object({ id: z.string().min(1).max(64).optional(), subject: subjectKey.optional() }).openapi("PortalTokenInvalidate")) } },
    responses: { 204: { description: "Invalidated" }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const by = c.req.valid("json");
    if (by.id === undefined && by.subject === undefined) invalidField("id", "give id or subject (or both)");
    const ids = await invalidatePortalTokens(database(c.env.DB), c.get("principal").namespace, by, Date.now());
    for (const id of ids) forgetKey(portalKeyId(id));
    return c.body(null, 204);
  },
);

const QUERY_PATH = "/api/v1/portal/meters/{meterSlug}/query";
/**
 * Matches the portal query route, which app.ts exempts from API-key authentication. HEAD too: hono
 * answers it with the GET route, which refuses API keys, so it was 401 whatever the credential.
 */
export const isPortalQuery = (method: string, path: string) => (method === "GET" || method === "HEAD") && /^\/api\/v1\/portal\/meters\/[^/]+\/query$/.test(path);

portal.openAPIRegistry.registerPath(
  createRoute({
    method: "get",
    path: QUERY_PATH,
    summary: "Query a meter for the portal token's subject (OpenMeter-compatible)",
    description:
      "Authenticated by a consumer portal token (`Authorization: Bearer em_portal_…`), not an API key. Same parameters and answer as " +
      "GET /api/v1/meters/{meterIdOrSlug}/query; `subject` is always the token's subject, and the meter must be one of the token's allowedMeterSlugs when it has them.",
    tags: ["Portal"],
    security: [{ portalToken: [] }],
    request: { params: z.object({ meterSlug: Slug }), query: QueryRequest.omit({ subject: true }) },
    responses: {
      200: { description: "Usage", content: { "application/json": { schema: QueryResult }, "text/csv": { schema: z.string() } } },
      ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "rate_limited"),
    },
  }),
);
portal.openAPIRegistry.registerComponent("securitySchemes", "portalToken", { type: "http", scheme: "bearer", description: "Consumer portal token" });

portal.get("/api/v1/portal/meters/:meterSlug/query", authenticatePortal(), async (c) => {
  const token = c.get("principal").portal;
  if (!token) throw new ApiError("unauthenticated", "a consumer portal token is required");
  const slug = c.req.param("meterSlug");
  const checked = Slug.safeParse(slug);
  if (!checked.success) invalidField("meterSlug", checked.error.issues[0]!.message);
  // Before the lookup, so a token cannot tell meters it may not query from meters that do not exist.
  if (token.allowedMeterSlugs && !token.allowedMeterSlugs.includes(slug)) throw new ApiError("forbidden", `this portal token may not query meter ${slug}`);
  // As OpenMeter does: the subject is the token's, whatever the query string says.
  const q = parseQueryRequest({ ...(fromSearchParams(new URL(c.req.url).searchParams) as object), subject: [token.subject] });
  const meter = await findMeterDef(c, slug);
  if (meter.slug !== slug) throw new ApiError("not_found", `no meter ${slug}`);
  const spec = foldSpec(meter, q, Date.now());
  return respond(c, spec, await querySubjects(c, meter, spec, [token.subject]));
});
