import { sql as rawSqlTag } from "drizzle-orm";
import { SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import { groupFilterSql, groupPath } from "../db/group-filter-sql";
import { matchesFilters, type EntitlementDef } from "../domain/entitlement";
import type { UsagePoint } from "../domain/grants";
import type { Sql } from "./sql";

/**
 * A feature's usage read from the stored minute buckets. Used when a segment's counters are built
 * (entitlement created, period rolled, reset, grant created or voided, meter re-metered), for values
 * at a past `time`, and — the documented exception — on every read of a UNIQUE_COUNT feature,
 * because distinct counts cannot be kept as an additive counter.
 */
export type Metered = NonNullable<EntitlementDef["metered"]>;

/**
 * Usage in [starts[0], to) as points the burn-down places into its phases; `starts` are the phase
 * boundaries (grant activity changes), so SUM/COUNT need one aggregate per phase, not per minute.
 */
export function usagePoints(sql: Sql, m: Metered, starts: readonly number[], to: number): UsagePoint[] {
  const from = starts[0]!;
  switch (m.aggregation) {
    case "SUM":
    case "COUNT":
      return starts.map((s, i) => ({ at: s, amount: additive(sql, m, s, Math.min(starts[i + 1] ?? to, to)) }));
    case "LATEST": {
      const l = latest(sql, m, from, to);
      return l ? [{ at: l.at, amount: l.value }] : [];
    }
    case "UNIQUE_COUNT":
      return uniqueFirsts(sql, m, from, to);
  }
}

function additive(sql: Sql, m: Metered, from: number, to: number): number {
  if (to <= from) return 0;
  const col = m.aggregation === "SUM" ? "sum" : "count";
  if (Object.keys(m.filters).length === 0) {
    return sql.one<{ v: number }>(`SELECT total(${col}) AS v FROM buckets WHERE meter_id = ? AND minute >= ? AND minute < ?`, m.meterId, from, to)?.v ?? 0;
  }
  // One row per group: the filter is applied to group keys, not to each minute.
  const rows = sql.all<{ g: string; v: number }>(
    `SELECT group_key AS g, total(${col}) AS v FROM buckets WHERE meter_id = ? AND minute >= ? AND minute < ? GROUP BY group_key`,
    m.meterId,
    from,
    to,
  );
  const cache = new Map<string, boolean>();
  let total = 0;
  for (const r of rows) if (matchesFilters(r.g, m, cache)) total += r.v;
  return total;
}

/** The value of the latest event (by event time) in [from, to) among the filtered groups. */
export function latest(sql: Sql, m: Metered, from: number, to: number): { at: number; value: number } | null {
  if (to <= from) return null;
  // SQLite returns the bare column `latest` from the row holding max(latest_at) (documented behaviour).
  const rows = sql.all<{ g: string; at: number; v: number | null }>(
    "SELECT group_key AS g, max(latest_at) AS at, latest AS v FROM buckets WHERE meter_id = ? AND minute >= ? AND minute < ? GROUP BY group_key",
    m.meterId,
    from,
    to,
  );
  let best: { at: number; value: number } | null = null;
  const cache = new Map<string, boolean>();
  for (const r of rows) {
    if (r.v === null || !matchesFilters(r.g, m, cache)) continue;
    if (best === null || r.at >= best.at) best = { at: r.at, value: r.v };
  }
  return best;
}

/**
 * SQL conditions selecting the uniques of the feature's groups: meterGroupByFilters with bound paths,
 * advancedMeterGroupByFilters as the meter query's SQL (src/db/group-filter-sql.ts, the same rules
 * as matchesFilters), its paths inlined as checked identifiers so that each operator binds one value.
 */
function groupFilter(m: Metered): { where: string; params: SqlStorageValue[] } {
  const keys = Object.keys(m.filters);
  const where = keys.map(() => " AND json_extract(group_key, ?) = ?").join("");
  const params: SqlStorageValue[] = keys.flatMap((k) => [`$.${k}`, m.filters[k]!]);
  if (!m.advancedFilters?.length) return { where, params };
  const q = dialect.sqlToQuery(groupFilterSql(m.advancedFilters, (k) => rawSqlTag.raw(`json_extract(group_key, '${groupPath(k)}')`)));
  return { where: `${where} AND ${q.sql}`, params: [...params, ...(q.params as SqlStorageValue[])] };
}

const dialect = new SQLiteSyncDialect();

/**
 * Distinct values in [from, to), each counted once at the minute it was first seen there — so the
 * burn-down charges a value to the phase in which it first appeared.
 */
function uniqueFirsts(sql: Sql, m: Metered, from: number, to: number): UsagePoint[] {
  if (to <= from) return [];
  const f = groupFilter(m);
  return sql
    .all<{ first: number; n: number }>(
      `SELECT first, count(*) AS n FROM (
         SELECT min(minute) AS first FROM uniques WHERE meter_id = ? AND minute >= ? AND minute < ?${f.where} GROUP BY value
       ) GROUP BY first ORDER BY first`,
      m.meterId,
      from,
      to,
      ...f.params,
    )
    .map((r) => ({ at: r.first, amount: r.n }));
}

/** Distinct values in [from, to) among the feature's groups: a UNIQUE_COUNT meter query of that window. */
export function distinctValues(sql: Sql, m: Metered, from: number, to: number): number {
  const f = groupFilter(m);
  return sql.one<{ n: number }>(`SELECT count(DISTINCT value) AS n FROM uniques WHERE meter_id = ? AND minute >= ? AND minute < ?${f.where}`, m.meterId, from, to, ...f.params)?.n ?? 0;
}

/** Whether `value` was already counted for the feature in [from, to): a check's UNIQUE_COUNT contribution. */
export function uniqueSeen(sql: Sql, m: Metered, from: number, to: number, value: string): boolean {
  const f = groupFilter(m);
  return (
    sql.one(`SELECT 1 AS x FROM uniques WHERE meter_id = ? AND minute >= ? AND minute < ? AND value = ?${f.where} LIMIT 1`, m.meterId, from, to, value, ...f.params) !==
    undefined
  );
}
