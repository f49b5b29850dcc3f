import type { RouterRoute } from "hono/types";

type Compiled = { method: string; pattern: RegExp };
// Keyed by the array and its length: hono adds routes to the same array in place.
const cache = new WeakMap<readonly RouterRoute[], { length: number; routes: Compiled[] }>();

/** A route path (`/api/v1/meters/:meterIdOrSlug`) as a whole-path pattern; each parameter is one segment. */
function compile(path: string): RegExp {
  const source = path
    .split("/")
    .map((seg) => (seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${source}$`);
}

/**
 * The methods the app's routes answer on `path` (HEAD wherever GET is), for a 405 with `Allow`
 * (RFC 9110 §15.5.6) when the path exists but not for the method used. Empty when no route has that
 * path: then it is a 404. Middleware (method ALL) names no resource and is left out. The routes
 * are compiled once per app.
 */
export function allowedMethods(routes: readonly RouterRoute[], path: string): string[] {
  let entry = cache.get(routes);
  if (entry?.length !== routes.length) {
    entry = { length: routes.length, routes: routes.filter((r) => r.method !== "ALL").map((r) => ({ method: r.method, pattern: compile(r.path) })) };
    cache.set(routes, entry);
  }
  const methods = new Set(entry.routes.filter((r) => r.pattern.test(path)).map((r) => r.method));
  if (methods.has("GET")) methods.add("HEAD");
  return [...methods].sort();
}
