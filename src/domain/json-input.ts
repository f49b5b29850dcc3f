/**
 * Shape limits on the JSON the API accepts, checked after JSON.parse and before anything uses it.
 *
 * - Depth: V8's JSON.parse is iterative, but what comes after is not — structured clone (every
 *   Durable Object RPC), JSON.stringify and zod recurse. Event data nested 10,000 levels deep used to
 *   overflow the stack inside the RPC and come back as a 503. This walk uses an explicit stack.
 * - Unpaired surrogates (`"\ud800"` is valid JSON): SQLite stores text as UTF-8 and turns them into
 *   U+FFFD, so two different ids or subjects would become the same stored value.
 * - Numbers beyond ±1.8e308 (`1e400` is valid JSON): JSON.parse makes them ±Infinity, and every later
 *   JSON.stringify (storage, RPC rows) writes null, so the value would change silently.
 * - `__proto__` keys: JSON.parse makes them ordinary own properties, but every later copy into a
 *   plain object (zod's record parsing included) drops them silently or sets a prototype, so a meter
 *   group key or a data field named `__proto__` would vanish instead of being stored.
 */
export const MAX_JSON_DEPTH = 64;

export interface JsonProblem {
  /** The top-level key under which the problem is (empty for the value itself). */
  path: string;
  message: string;
}

/** No unpaired UTF-16 surrogate (String.prototype.isWellFormed: native, cheaper than a /\p{Cs}/u test). */
export function isWellFormedText(s: string): boolean {
  return s.isWellFormed();
}

/** The first problem found in a parsed JSON value, or null. Never recurses. */
export function inspectJson(value: unknown, maxDepth = MAX_JSON_DEPTH): JsonProblem | null {
  const stack: [value: unknown, depth: number, path: string][] = [[value, 1, ""]];
  while (stack.length > 0) {
    const [v, depth, path] = stack.pop()!;
    if (typeof v === "string") {
      if (!isWellFormedText(v)) return { path, message: "contains an unpaired UTF-16 surrogate (not well-formed Unicode)" };
      continue;
    }
    if (typeof v === "number") {
      if (!Number.isFinite(v)) return { path, message: "contains a number too large for a 64-bit float (JSON.parse reads it as Infinity, which would be stored as null)" };
      continue;
    }
    if (typeof v !== "object" || v === null) continue;
    if (depth > maxDepth) return { path, message: `is nested more than ${maxDepth} levels deep` };
    if (Array.isArray(v)) {
      for (const item of v) stack.push([item, depth + 1, path]);
      continue;
    }
    for (const key of Object.keys(v)) {
      const at = path || key;
      if (key === "__proto__") return { path: at, message: 'has a key named "__proto__", which is not accepted' };
      if (!isWellFormedText(key)) return { path: at, message: "has a key with an unpaired UTF-16 surrogate (not well-formed Unicode)" };
      stack.push([(v as Record<string, unknown>)[key], depth + 1, at]);
    }
  }
  return null;
}
