import { z } from "@hono/zod-openapi";

/**
 * OpenMeter's FilterString (`advancedMeterGroupByFilters` of a meter query), applied to a bucket's
 * group-by values. One operator per object, as OpenMeter requires; `$and`/`$or` nest. The same rules
 * run in two places that must agree: here, over each subject's buckets in its Durable Object, and as
 * SQL over D1's snapshot rows (src/db/group-filter-sql.ts) — so `$like` and `$ilike` follow SQLite:
 * `%` any run, `_` one character, `\` escapes the next character, and `$ilike` folds ASCII letters
 * only. A group-by value the event did not have (null) equals no string: it fails `$eq`, `$in`,
 * the likes and the comparisons, and passes `$ne`, `$nin` and the negated likes.
 */
export type FilterString =
  | { $eq: string }
  | { $ne: string }
  | { $in: string[] }
  | { $nin: string[] }
  | { $like: string }
  | { $nlike: string }
  | { $ilike: string }
  | { $nilike: string }
  | { $gt: string }
  | { $gte: string }
  | { $lt: string }
  | { $lte: string }
  | { $and: FilterString[] }
  | { $or: FilterString[] }
  | Record<string, never>;

/** Every filter of a query, each on one group-by key; all must hold. filterGroupBy's pairs become `$eq`/`$in`. */
export type GroupFilters = readonly (readonly [key: string, filter: FilterString])[];

export const FILTER_LIMITS = { depth: 8, operators: 50, values: 1_000 } as const;
const SCALAR = ["$eq", "$ne", "$like", "$nlike", "$ilike", "$nilike", "$gt", "$gte", "$lt", "$lte"] as const;
const LIST = ["$in", "$nin"] as const;
const NESTED = ["$and", "$or"] as const;
const OPERATORS = new Set<string>([...SCALAR, ...LIST, ...NESTED]);

const value = z.string().max(1024);
export const FilterStringSchema: z.ZodType<FilterString> = z.lazy(() =>
  z
    .strictObject({
      ...Object.fromEntries(SCALAR.map((op) => [op, value.nullish()])),
      ...Object.fromEntries(LIST.map((op) => [op, z.array(value).max(FILTER_LIMITS.values).nullish()])),
      ...Object.fromEntries(NESTED.map((op) => [op, z.array(FilterStringSchema).min(1).max(FILTER_LIMITS.operators).nullish()])),
    })
    .transform((f, ctx) => {
      // OpenMeter reads a null operator as absent.
      const set = Object.entries(f).filter(([, v]) => v !== null && v !== undefined);
      if (set.length > 1) {
        ctx.addIssue({ code: "custom", message: `one operator per filter object (got ${set.map(([k]) => k).join(", ")}); combine them with $and or $or` });
        return z.NEVER;
      }
      return Object.fromEntries(set) as FilterString;
    }),
) as unknown as z.ZodType<FilterString>;

/** FilterString as /openapi.json shows it: the document generator cannot follow the recursive schema above. */
export const FilterStringDoc = z
  .object({
    ...Object.fromEntries(SCALAR.map((op) => [op, z.string().nullish()])),
    ...Object.fromEntries(LIST.map((op) => [op, z.array(z.string()).nullish()])),
    ...Object.fromEntries(NESTED.map((op) => [op, z.array(z.record(z.string(), z.unknown())).nullish().openapi({ description: "FilterString objects" })])),
  })
  .openapi("FilterString", { description: "One operator per object (OpenMeter's FilterString)." });

/** The operator and operand of a filter object; null for `{}` (no condition). */
export function operatorOf(f: FilterString): [op: string, operand: unknown] | null {
  for (const op in f) if (OPERATORS.has(op)) return [op, (f as Record<string, unknown>)[op]];
  return null;
}

/** Depth and size limits, so a query's filter stays one cheap D1 statement (at most 100 bound parameters). */
export function filterProblem(filters: GroupFilters): string | null {
  let operators = 0;
  const walk = (f: FilterString, depth: number): string | null => {
    if (depth > FILTER_LIMITS.depth) return `filters nest at most ${FILTER_LIMITS.depth} deep`;
    const o = operatorOf(f);
    if (!o) return null;
    if (++operators > FILTER_LIMITS.operators) return `at most ${FILTER_LIMITS.operators} filter operators per query`;
    if (o[0] === "$and" || o[0] === "$or") for (const child of o[1] as FilterString[]) {
      const p = walk(child, depth + 1);
      if (p) return p;
    }
    return null;
  };
  for (const [, f] of filters) {
    const p = walk(f, 1);
    if (p) return p;
  }
  return null;
}

const foldAscii = (s: string) => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

/** A LIKE pattern (SQLite's rules, escape `\`) as an anchored RegExp over code points. */
export function likePattern(pattern: string, asciiFold: boolean): RegExp {
  let re = "";
  const chars = [...(asciiFold ? foldAscii(pattern) : pattern)];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === "\\") {
      // SQLite: an escape with nothing after it matches nothing.
      if (i + 1 === chars.length) return /(?!)/u;
      re += escapeRegExp(chars[++i]!);
    } else if (c === "%") re += "[\\s\\S]*";
    else if (c === "_") re += "[\\s\\S]";
    else re += escapeRegExp(c);
  }
  return new RegExp(`^${re}$`, "u");
}

const escapeRegExp = (c: string) => c.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");

/** SQLite's BINARY collation on UTF-8 text: code point order, which UTF-16 `<` is not for astral characters. */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
  }
  return x.length - y.length;
}

export function matchesFilter(f: FilterString, v: string | null, likes: Map<string, RegExp>): boolean {
  const o = operatorOf(f);
  if (!o) return true;
  const [op, operand] = o;
  const like = (fold: boolean) => {
    const key = `${fold ? "i" : "s"}${operand as string}`;
    let re = likes.get(key);
    if (!re) likes.set(key, (re = likePattern(operand as string, fold)));
    return v !== null && re.test(fold ? foldAscii(v) : v);
  };
  switch (op) {
    case "$eq": return v === operand;
    case "$ne": return v !== operand;
    case "$in": return v !== null && (operand as string[]).includes(v);
    case "$nin": return v === null || !(operand as string[]).includes(v);
    case "$like": return like(false);
    case "$nlike": return !like(false);
    case "$ilike": return like(true);
    case "$nilike": return !like(true);
    case "$gt": return v !== null && compareText(v, operand as string) > 0;
    case "$gte": return v !== null && compareText(v, operand as string) >= 0;
    case "$lt": return v !== null && compareText(v, operand as string) < 0;
    case "$lte": return v !== null && compareText(v, operand as string) <= 0;
    case "$and": return (operand as FilterString[]).every((c) => matchesFilter(c, v, likes));
    case "$or": return (operand as FilterString[]).some((c) => matchesFilter(c, v, likes));
    default: return false;
  }
}

/** A predicate over a bucket's group-by values (null where the event had none). */
export function groupPredicate(filters: GroupFilters): (values: Readonly<Record<string, string | null>>) => boolean {
  const likes = new Map<string, RegExp>();
  // Own keys only: a stored group may lack a key the meter gained later, and `constructor` is then not Object.
  return (values) => filters.every(([k, f]) => matchesFilter(f, Object.hasOwn(values, k) ? (values[k] ?? null) : null, likes));
}
