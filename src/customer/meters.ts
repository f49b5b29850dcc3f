import { BucketAccumulator, compileMeter, MeterSet, readEvent, type CompiledMeter } from "../domain/metering";
import { meterFingerprint, type MeterDef } from "../domain/meter";
import type { FeatureDef } from "../domain/feature";
import type { ChannelDef, RuleDef } from "../domain/notification";
import { addToBuckets, dropBuckets } from "./buckets";
import { getMeta, setMeta } from "./schema";
import { markChanged } from "./snapshots";
import type { Sql } from "./sql";

export interface ConfigSnapshot {
  version: number;
  meters: MeterDef[];
  channels?: ChannelDef[];
  rules?: RuleDef[];
  features?: FeatureDef[];
}

/**
 * What an RPC names the namespace's definitions by: usually the version alone, which the object
 * already holds (or a newer one); the whole snapshot only when the object answered StaleConfig.
 * Cloning the snapshot into every RPC cost more than the rest of a check (docs/performance.md).
 */
export type ConfigRef = ConfigSnapshot | { version: number; meters?: undefined };

/** An object's answer to a version it does not hold, given without a snapshot: it did nothing. */
export interface StaleConfig {
  staleConfig: true;
  /** The version the object holds. */
  holds: number;
}

export function isStaleConfig(x: unknown): x is StaleConfig {
  return typeof x === "object" && x !== null && (x as Partial<StaleConfig>).staleConfig === true;
}

/** The meter definitions this DO counts with, as stored (the last config version it applied). */
export function loadMeters(sql: Sql): { version: number; set: MeterSet } {
  const defs = sql.all<{ def: string }>("SELECT def FROM meters").map((r) => JSON.parse(r.def) as MeterDef);
  return { version: Number(getMeta<number>(sql, "config_version") ?? 0), set: new MeterSet(defs) };
}

/**
 * Brings the DO up to a newer definition set. A new meter, or one whose counting changed (event type,
 * value, group-by, eventFrom), is re-metered from the retained event log; buckets older than the
 * pruning watermark cannot be rebuilt and are kept as they were counted. Runs inside the caller's
 * transaction. Returns how many events each re-metered meter could not read.
 */
export function applyConfig(sql: Sql, config: ConfigSnapshot): { remetered: { slug: string; skipped: number }[] } {
  const stored = new Map(sql.all<{ id: string; fingerprint: string }>("SELECT id, fingerprint FROM meters").map((r) => [r.id, r.fingerprint]));
  const next = new Map(config.meters.map((m) => [m.id, m]));
  for (const id of stored.keys()) {
    if (!next.has(id)) {
      dropBuckets(sql, id);
      sql.exec("DELETE FROM meters WHERE id = ?", id);
    }
  }
  const rebuildFrom = Number(getMeta<number>(sql, "pruned_before") ?? 0);
  const remetered: { slug: string; skipped: number }[] = [];
  for (const def of config.meters) {
    const fingerprint = meterFingerprint(def);
    const before = stored.get(def.id);
    if (before !== fingerprint) {
      const compiled = compileMeter(def);
      if (before !== undefined) dropBuckets(sql, def.id, rebuildFrom);
      if (!("reason" in compiled)) remetered.push({ slug: def.slug, skipped: remeter(sql, compiled, rebuildFrom) });
    }
    sql.exec(
      "INSERT INTO meters (id, slug, fingerprint, def) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET slug = excluded.slug, fingerprint = excluded.fingerprint, def = excluded.def",
      def.id,
      def.slug,
      fingerprint,
      JSON.stringify(def),
    );
  }
  setMeta(sql, "config_version", config.version);
  return { remetered };
}

function remeter(sql: Sql, meter: CompiledMeter, fromTime: number): number {
  const acc = new BucketAccumulator();
  let skipped = 0;
  const since = Math.max(fromTime, meter.def.eventFrom ?? 0);
  const cursor = sql.exec<{ source: string; id: string; time: number; data: string | null }>(
    "SELECT source, id, time, data FROM events WHERE type = ? AND time >= ? ORDER BY ingested_at",
    meter.def.eventType,
    since,
  );
  for (const row of cursor) {
    const data = row.data === null ? null : (JSON.parse(row.data) as Record<string, unknown>);
    const r = readEvent(meter, { index: 0, id: row.id, source: row.source, type: meter.def.eventType, time: row.time, data });
    if (r.ok) acc.add(r, row.time);
    else skipped++;
  }
  addToBuckets(sql, acc.deltas(), acc.uniques());
  markChanged(sql, acc.deltas());
  return skipped;
}
