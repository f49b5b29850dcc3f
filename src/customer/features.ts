import { jsonChunks } from "../domain/chunks";
import type { FeatureDef } from "../domain/feature";
import type { Sql } from "./sql";

/**
 * The namespace's features as of the config version this object holds: webhook payloads carry the
 * entitlement's feature as OpenMeter's Feature (name, createdAt, …), which the entitlement alone
 * does not know. Only rows whose definition changed are written: features change rarely, while
 * every meter, rule or channel change sends the whole config again. Inside the caller's transaction.
 */
export function applyFeatures(sql: Sql, features: readonly FeatureDef[]): void {
  const stored = new Map(sql.all<{ id: string; def: string }>("SELECT id, def FROM features").map((r) => [r.id, r.def]));
  const changed = features.filter((f) => stored.get(f.id) !== JSON.stringify(f));
  // Features are archived, never deleted; a row that disappeared anyway must not be shown as current.
  const gone = [...stored.keys()].filter((id) => !features.some((f) => f.id === id));
  for (const ids of jsonChunks(gone)) sql.exec("DELETE FROM features WHERE id IN (SELECT value FROM json_each(?))", ids);
  // One statement per chunk of rows (one bound JSON string), not one per feature (DESIGN invariant 5).
  for (const rows of jsonChunks(changed)) {
    sql.exec(
      "INSERT INTO features (id, def) SELECT json_extract(value, '$.id'), value FROM json_each(?) WHERE true ON CONFLICT(id) DO UPDATE SET def = excluded.def",
      rows,
    );
  }
}

export function featureDef(sql: Sql, id: string): FeatureDef | undefined {
  const row = sql.one<{ def: string }>("SELECT def FROM features WHERE id = ?", id);
  return row ? (JSON.parse(row.def) as FeatureDef) : undefined;
}
