import { matchesFilters } from "../domain/entitlement";
import type { BucketAccumulator } from "../domain/metering";
import { liveMetered, saveCounters, saveState } from "./entitlements";
import { grantsOf } from "./grants";
import { ensureCurrent, rebuild } from "./segments";
import type { Sql } from "./sql";

/**
 * Adds what a counted batch put into the buckets to the running usage of every entitlement whose
 * meter it touched. Runs inside the ingest (or check) transaction, after the buckets were written:
 * the usage of an entitlement and the buckets it is derived from change together or not at all.
 *
 * Cost on the hot path: one write per entitlement the batch touched; the rows come from the
 * liveMetered memo and are updated in place, so threshold evaluation reads the new counters next.
 * UNIQUE_COUNT entitlements keep no counter (distinct counts are computed per read).
 */
export function countEntitlementUsage(sql: Sql, buckets: BucketAccumulator, now: number): void {
  const deltas = buckets.deltas();
  if (deltas.length === 0) return;
  const touched = new Set(deltas.map((d) => d.meterId));
  for (const e of liveMetered(sql)) {
    const m = e.def.metered!;
    if (!touched.has(m.meterId) || m.aggregation === "UNIQUE_COUNT") continue;
    if (now >= e.segEnd) {
      // The period ended: roll over first. The new segment is built from the buckets, which already
      // hold this batch, so the batch must not be added again; its events in the closed period stay out.
      ensureCurrent(sql, e, grantsOf(sql, e.id), now);
      continue;
    }
    const cache = new Map<string, boolean>();
    let changed = false;
    for (const d of deltas) {
      if (d.meterId !== m.meterId || d.minute < e.segStart || d.minute >= e.segEnd) continue;
      if (!matchesFilters(d.groupKey, m, cache)) continue;
      if (m.aggregation === "LATEST") {
        // Ties go to the later-ingested event, as in the buckets.
        if (d.latest !== null && (e.latestAt === null || d.latestAt >= e.latestAt)) {
          e.latestAt = d.latestAt;
          e.latest = d.latest;
          changed = true;
        }
        continue;
      }
      const phase = phaseIndex(e.phases, d.minute);
      e.phases[phase]![1] += m.aggregation === "SUM" ? d.sum : d.count;
      changed = true;
    }
    if (changed) saveCounters(sql, e);
  }
}

/** The last phase starting at or before `minute` (phases are sorted; the first starts the segment). */
function phaseIndex(phases: readonly [number, number][], minute: number): number {
  let i = phases.length - 1;
  while (i > 0 && phases[i]![0] > minute) i--;
  return i;
}

/**
 * After a meter was re-metered from the event log (its definition changed), the counters of the
 * entitlements on it are rebuilt from the new buckets. Inside the caller's transaction.
 */
export function rebuildForMeters(sql: Sql, meterIds: ReadonlySet<string>, now: number): void {
  if (meterIds.size === 0) return;
  for (const e of liveMetered(sql)) {
    if (!meterIds.has(e.def.metered!.meterId)) continue;
    const grants = grantsOf(sql, e.id);
    rebuild(sql, e, grants);
    e.updatedAt = now;
    if (!ensureCurrent(sql, e, grants, now)) saveState(sql, e);
  }
}
