import type { Context, MiddlewareHandler } from "hono";
import { settings } from "../env";
import { database } from "../db/client";
import { findKeyByHash } from "../db/keys";
import { findPortalTokenByHash } from "../db/portal";
import { hex, sha256, sha256Hex, timingSafeEqualText } from "../domain/ids";
import { LIMITS } from "../domain/cloudevent";
import { jsonBody } from "./body";
import type { AppEnv, Principal, Scope } from "./context";
import { ApiError } from "./errors";

export const ROOT_NAMESPACE = "default";

/** Portal tokens carry their own prefix, so an API route can refuse one without a lookup. */
export const PORTAL_TOKEN_PREFIX = "em_portal_";
export const PORTAL_QUERY_ROUTE = "GET /api/v1/portal/meters/{meterSlug}/query";

/**
 * The period of the `[[ratelimits]]` binding in wrangler.toml. The binding counts in fixed windows of
 * this length and does not say when the current one ends, so this is the longest a client must wait.
 */
export const RATE_LIMIT_RETRY_AFTER_SECONDS = 10;

// Isolate-local cache of credential hash → principal (API keys and portal tokens). A revoked key or an
// invalidated token stops working in this isolate at once, and in every other isolate within
// CONFIG_CACHE_SECONDS (the same bound as definition changes). Portal expiry is checked on every use.
const keyCache = new Map<string, { principal: Principal | null; expiresAt: number | null; expires: number }>();
const KEY_CACHE_MAX = 10_000;

export function forgetKey(keyId: string): void {
  for (const [hash, entry] of keyCache) if (entry.principal?.keyId === keyId) keyCache.delete(hash);
}

export const portalKeyId = (tokenId: string) => `portal:${tokenId}`;

function bearer(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/**
 * Authenticates `Authorization: Bearer <API key>`, sets `principal`, then applies the key's rate
 * limit. 401 when missing or unknown, and for a portal token: those work on the portal route only.
 */
export function authenticate(): MiddlewareHandler<AppEnv> {
  return async function authenticateMiddleware(c, next) {
    const token = bearer(c.req.header("authorization"));
    if (!token) throw new ApiError("unauthenticated", "send an API key as `Authorization: Bearer <key>`");
    const principal = await resolve(c.env, token);
    c.set("principal", principal);
    await rateLimit(c, principal.keyId);
    await next();
  };
}

/**
 * Authenticates `Authorization: Bearer <portal token>` for the portal query route: the principal has
 * no scopes, only the token's subject and meters. API keys are refused here (they have the meter query).
 */
export function authenticatePortal(): MiddlewareHandler<AppEnv> {
  return async function authenticatePortalMiddleware(c, next) {
    const token = bearer(c.req.header("authorization"));
    if (!token || !token.startsWith(PORTAL_TOKEN_PREFIX)) {
      throw new ApiError("unauthenticated", "send a consumer portal token (from POST /api/v1/portal/tokens) as `Authorization: Bearer <token>`; API keys use GET /api/v1/meters/{meterIdOrSlug}/query");
    }
    const principal = await resolvePortal(c.env, token);
    c.set("principal", principal);
    await rateLimit(c, principal.keyId);
    await next();
  };
}

// The admin key's digest, per isolate: it was hashed again on every request (per value: a new
// deployment may bring another key). Only the settled digest is shared, never a pending promise: a
// promise created by one request and awaited by another is what workerd refuses as "I/O on behalf
// of a different request" (see src/db/config.ts).
let adminDigest: { key: string; digest: Uint8Array } | null = null;
async function adminKeyDigest(key: string): Promise<Uint8Array> {
  if (adminDigest?.key !== key) adminDigest = { key, digest: await sha256(key) };
  return adminDigest.digest;
}

async function resolve(env: AppEnv["Bindings"], token: string): Promise<Principal> {
  const digest = await sha256(token);
  // Digests compared as bytes: both are 32 long, and no text is encoded per request for it.
  if (env.ADMIN_API_KEY && crypto.subtle.timingSafeEqual(digest, await adminKeyDigest(env.ADMIN_API_KEY))) {
    return { namespace: ROOT_NAMESPACE, scopes: ["admin", "read", "ingest"], keyId: "root", root: true };
  }
  if (token.startsWith(PORTAL_TOKEN_PREFIX)) {
    throw new ApiError("unauthenticated", `a consumer portal token is accepted only by ${PORTAL_QUERY_ROUTE}; use an API key here`);
  }
  const hash = hex(digest);
  return cached(env, hash, async () => {
    const row = await findKeyByHash(database(env.DB), hash);
    // The row was found by its hash; comparing again in constant time keeps the check independent of index timing.
    if (!row || !timingSafeEqualText(row.keyHash, hash)) return null;
    return { principal: { namespace: row.namespace, scopes: row.scopes as Scope[], keyId: row.id, root: false }, expiresAt: null };
  }, "the API key is not valid");
}

async function resolvePortal(env: AppEnv["Bindings"], token: string): Promise<Principal> {
  const hash = await sha256Hex(token);
  return cached(env, hash, async () => {
    const row = await findPortalTokenByHash(database(env.DB), hash);
    if (!row || !timingSafeEqualText(row.tokenHash, hash)) return null;
    const principal: Principal = {
      namespace: row.namespace,
      scopes: [],
      keyId: portalKeyId(row.id),
      root: false,
      portal: { subject: row.subject, allowedMeterSlugs: row.allowedMeterSlugs },
    };
    return { principal, expiresAt: row.expiresAt };
  }, "the portal token is not valid (unknown or invalidated)");
}

/** Looks `hash` up through the isolate cache; negative answers are cached too, so unknown credentials cost D1 once per TTL. */
async function cached(
  env: AppEnv["Bindings"],
  hash: string,
  load: () => Promise<{ principal: Principal; expiresAt: number | null } | null>,
  invalid: string,
): Promise<Principal> {
  const now = Date.now();
  let entry = keyCache.get(hash);
  if (!entry || entry.expires <= now) {
    const found = await load();
    entry = { principal: found?.principal ?? null, expiresAt: found?.expiresAt ?? null, expires: now + settings(env).CONFIG_CACHE_SECONDS * 1000 };
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
    keyCache.set(hash, entry);
  }
  if (!entry.principal) throw new ApiError("unauthenticated", invalid);
  if (entry.expiresAt !== null && entry.expiresAt <= now) throw new ApiError("unauthenticated", `the portal token expired at ${new Date(entry.expiresAt).toISOString()}`);
  return entry.principal;
}

/**
 * Per-key request rate through Cloudflare's rate limiting binding, keyed by key id (never the secret).
 * The binding is approximate by design: counted per Cloudflare location and eventually consistent.
 * If it fails, the request is served: metering must not stop because the limiter is unavailable.
 */
async function rateLimit(c: Context<AppEnv>, keyId: string): Promise<void> {
  const limiter = c.env.RATE_LIMITER;
  if (!limiter || !settings(c.env).RATE_LIMIT_ENABLED) return;
  let allowed = true;
  try {
    allowed = (await limiter.limit({ key: keyId })).success;
  } catch (e) {
    console.error("rate limiter unavailable; request served", String(e));
  }
  if (!allowed) {
    throw new ApiError("rate_limited", `this credential sent more requests than its rate limit allows; retry after ${RATE_LIMIT_RETRY_AFTER_SECONDS} seconds`);
  }
}

// The JSON body gate runs once the route and the scope are settled, not for every /api request: a path
// or method that does not exist (404, 405) and a key without the scope (403) are answered whatever the
// body holds, which is never read for them. Ingest reads its own body, by CloudEvents media types.
const bodyGate = jsonBody({ maxBytes: LIMITS.bytesPerRequest, skip: (path) => path === "/api/v1/events" });

/** 403 unless the caller's key has `scope` (admin implies every scope); then the JSON body gate. */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async function requireScopeMiddleware(c, next) {
    const p = c.get("principal");
    if (p.portal) throw new ApiError("forbidden", `a consumer portal token is accepted only by ${PORTAL_QUERY_ROUTE}`);
    if (!p.scopes.includes(scope) && !p.scopes.includes("admin")) {
      throw new ApiError("forbidden", `this API key lacks the \`${scope}\` scope`);
    }
    await bodyGate(c, next);
  };
}
