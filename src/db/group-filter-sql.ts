import { sql, type SQL } from "drizzle-orm";
import { operatorOf, type FilterString, type GroupFilters } from "../domain/group-filter";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A group-by key as a JSON path; meter keys are identifiers (domain/meter.ts), so it can be inlined in SQL text. */
export function groupPath(key: string): string {
  if (!IDENTIFIER.test(key)) throw new Error(`group-by key ${JSON.stringify(key)} is not an identifier`);
  return `$.${key}`;
}

/**
 * A query's group filters as one SQL condition on a snapshot row's group values, with the same
 * answers as domain/group-filter.ts gives over a Durable Object's buckets (the README's meter query
 * section; test/http/query-group-filters.test.ts compares the two). One bound parameter per
 * operator, `$in`/`$nin` lists included (as JSON): filterProblem caps the operators well under
 * D1's 100 parameters per statement.
 */
export function groupFilterSql(filters: GroupFilters, valueOf: (key: string) => SQL): SQL {
  if (filters.length === 0) return sql`1`;
  return sql.join(filters.map(([k, f]) => condition(f, valueOf(k))), sql` AND `);
}

function condition(f: FilterString, v: SQL): SQL {
  const o = operatorOf(f);
  if (!o) return sql`1`;
  const [op, x] = o;
  // A missing group value (NULL) equals no string: it fails the positive tests and passes the negated ones.
  switch (op) {
    case "$eq": return sql`(${v} IS NOT NULL AND ${v} = ${x})`;
    case "$ne": return sql`(${v} IS NULL OR ${v} <> ${x})`;
    case "$in": return sql`(${v} IS NOT NULL AND ${v} IN (SELECT value FROM json_each(${JSON.stringify(x)})))`;
    case "$nin": return sql`(${v} IS NULL OR ${v} NOT IN (SELECT value FROM json_each(${JSON.stringify(x)})))`;
    // SQLite's LIKE folds ASCII case: the case-sensitive like is the same pattern as a GLOB.
    case "$like": {
      const glob = likeToGlob(x as string);
      return glob === null ? sql`0` : sql`(${v} IS NOT NULL AND ${v} GLOB ${glob})`;
    }
    case "$nlike": {
      const glob = likeToGlob(x as string);
      return glob === null ? sql`1` : sql`(${v} IS NULL OR NOT ${v} GLOB ${glob})`;
    }
    case "$ilike": return sql`(${v} IS NOT NULL AND ${v} LIKE ${x} ESCAPE '\\')`;
    case "$nilike": return sql`(${v} IS NULL OR NOT ${v} LIKE ${x} ESCAPE '\\')`;
    case "$gt": return sql`(${v} IS NOT NULL AND ${v} > ${x})`;
    case "$gte": return sql`(${v} IS NOT NULL AND ${v} >= ${x})`;
    case "$lt": return sql`(${v} IS NOT NULL AND ${v} < ${x})`;
    case "$lte": return sql`(${v} IS NOT NULL AND ${v} <= ${x})`;
    case "$and": return sql`(${sql.join((x as FilterString[]).map((c) => condition(c, v)), sql` AND `)})`;
    case "$or": return sql`(${sql.join((x as FilterString[]).map((c) => condition(c, v)), sql` OR `)})`;
    default: throw new Error(`unknown filter operator ${op}`);
  }
}

/**
 * A LIKE pattern (escape `\`) as the GLOB pattern that matches the same strings case-sensitively;
 * null when it matches nothing (SQLite: an escape with nothing after it).
 */
export function likeToGlob(pattern: string): string | null {
  let out = "";
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    let c = chars[i]!;
    if (c === "\\") {
      if (i + 1 === chars.length) return null;
      c = chars[++i]!;
      out += literal(c);
    } else if (c === "%") out += "*";
    else if (c === "_") out += "?";
    else out += literal(c);
  }
  return out;
}

const literal = (c: string) => (c === "*" || c === "?" || c === "[" ? `[${c}]` : c);
