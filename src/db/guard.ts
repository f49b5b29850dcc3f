import { utf8Length } from "../domain/chunks";

/**
 * D1 and Durable Object SQLite in production refuse statements with more than 100 bound
 * parameters or more than 100 KB of SQL text, and strings over 2 MB; the local runtime accepts
 * them. Checking here, in every environment, makes a violation fail in tests instead of in production.
 */
export const MAX_BOUND_PARAMETERS = 100;
export const MAX_STATEMENT_BYTES = 100_000;
/** Production's cap on a string or BLOB, a bound parameter included ("2 MB", in UTF-8 bytes). */
export const MAX_STRING_BYTES = 2_000_000;

export class StatementLimitError extends Error {}

export function checkStatement(query: string, params: readonly unknown[]): void {
  if (params.length > MAX_BOUND_PARAMETERS) {
    throw new StatementLimitError(`statement binds ${params.length} parameters; the production limit is ${MAX_BOUND_PARAMETERS}: ${query.slice(0, 120)}`);
  }
  // A UTF-16 unit is at most 3 UTF-8 bytes: only long strings need measuring.
  if (query.length * 3 > MAX_STATEMENT_BYTES) {
    const bytes = utf8Length(query);
    if (bytes > MAX_STATEMENT_BYTES) throw new StatementLimitError(`statement is ${bytes} bytes; the production limit is ${MAX_STATEMENT_BYTES}`);
  }
  for (const p of params) {
    if (typeof p !== "string" || p.length * 3 <= MAX_STRING_BYTES) continue;
    const bytes = utf8Length(p);
    if (bytes > MAX_STRING_BYTES) throw new StatementLimitError(`a bound string is ${bytes} bytes; the production limit is ${MAX_STRING_BYTES}: ${query.slice(0, 120)}`);
  }
}

const UNWRAP = Symbol("unwrap");
const guarded = new WeakMap<D1Database, D1Database>();

export function guardD1(d1: D1Database): D1Database {
  const existing = guarded.get(d1);
  if (existing) return existing;
  const wrapStatement = (query: string, stmt: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(stmt, {
      get(target, prop) {
        if (prop === UNWRAP) return target;
        if (prop === "bind") {
          return (...values: unknown[]) => {
            checkStatement(query, values);
            return wrapStatement(query, target.bind(...values));
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  const proxy = new Proxy(d1, {
    get(target, prop) {
      if (prop === "prepare") {
        return (query: string) => {
          checkStatement(query, []);
          return wrapStatement(query, target.prepare(query));
        };
      }
      if (prop === "batch") {
        // Unwrap our proxies: D1's batch() checks that statements are its own.
        return (stmts: D1PreparedStatement[]) => target.batch(stmts.map((s) => (s as unknown as Record<symbol, D1PreparedStatement>)[UNWRAP] ?? s));
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  guarded.set(d1, proxy);
  return proxy;
}
