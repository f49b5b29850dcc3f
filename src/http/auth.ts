import type { MiddlewareHandler } from "hono";
import { settings } from "../env";
import { database } from "../db/client";
import { findKeyByHash } from "../db/keys";
import { sha256Hex, timingSafeEqualText } from "../domain/ids";
import type { AppEnv, Principal, Scope } from "./context";
import { ApiError } from "./errors";

export const ROOT_NAMESPACE = "default";

// Isolate-local cache of key hash → principal. A revoked key stops working in this isolate at once,
// and in every other isolate within CONFIG_CACHE_SECONDS (the same bound as definition changes).
const keyCache = new Map<string, { principal: Principal | null; expires: number }>();
const KEY_CACHE_MAX = 10_000;

export function forgetKey(keyId: string): void {
  for (const [hash, entry] of keyCache) if (entry.principal?.keyId === keyId) keyCache.delete(hash);
}

function bearer(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/** Authenticates `Authorization: Bearer <key>` and sets `principal`. 401 when missing or unknown. */
export function authenticate(): MiddlewareHandler<AppEnv> {
  return async function authenticateMiddleware(c, next) {
    const token = bearer(c.req.header("authorization"));
    if (!token) throw new ApiError("unauthenticated", "send an API key as `Authorization: Bearer <key>`");
    c.set("principal", await resolve(c.env, token));
    await next();
  };
}

async function resolve(env: AppEnv["Bindings"], token: string): Promise<Principal> {
  const hash = await sha256Hex(token);
  if (env.ADMIN_API_KEY && timingSafeEqualText(hash, await sha256Hex(env.ADMIN_API_KEY))) {
    return { namespace: ROOT_NAMESPACE, scopes: ["admin", "read", "ingest"], keyId: "root", root: true };
  }
  const now = Date.now();
  const hit = keyCache.get(hash);
  if (hit && hit.expires > now) {
    if (!hit.principal) throw new ApiError("unauthenticated", "the API key is not valid");
    return hit.principal;
  }
  const row = await findKeyByHash(database(env.DB), hash);
  // The row was found by its hash; comparing again in constant time keeps the check independent of index timing.
  const principal: Principal | null =
    row && timingSafeEqualText(row.keyHash, hash)
      ? { namespace: row.namespace, scopes: row.scopes as Scope[], keyId: row.id, root: false }
      : null;
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(hash, { principal, expires: now + settings(env).CONFIG_CACHE_SECONDS * 1000 });
  if (!principal) throw new ApiError("unauthenticated", "the API key is not valid");
  return principal;
}

/** 403 unless the caller's key has `scope` (admin implies every scope). */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async function requireScopeMiddleware(c, next) {
    const p = c.get("principal");
    if (!p.scopes.includes(scope) && !p.scopes.includes("admin")) {
      throw new ApiError("forbidden", `this API key lacks the \`${scope}\` scope`);
    }
    await next();
  };
}
