import type { Bucket } from "../domain/aggregate";
import type { BucketDelta, UniqueEntry } from "../domain/metering";
import { markDropped } from "./snapshots";
import { jsonChunks, type Sql } from "./sql";

/**
 * Adds deltas to the stored buckets in one set-based statement per ~1 MB of deltas
 * (DESIGN invariant 5): a 1,000-event batch touching one bucket writes one bucket row.
 */
export function addToBuckets(sql: Sql, deltas: readonly BucketDelta[], uniques: readonly UniqueEntry[]): void {
  const rows = deltas.map((d) => [d.meterId, d.minute, d.groupKey, d.sum, d.count, d.min, d.max, d.latestAt, d.latest]);
  for (const chunk of jsonChunks(rows)) {
    // `WHERE true` disambiguates the upsert clause from a join (SQLite's documented parsing quirk).
    sql.exec(
      `INSERT INTO buckets (meter_id, minute, group_key, sum, count, min, max, latest_at, latest)
       SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8
       FROM json_each(?) WHERE true
       ON CONFLICT (meter_id, minute, group_key) DO UPDATE SET
         sum = sum + excluded.sum,
         count = count + excluded.count,
         min = CASE WHEN min IS NULL OR excluded.min < min THEN excluded.min ELSE min END,
         max = CASE WHEN max IS NULL OR excluded.max > max THEN excluded.max ELSE max END,
         latest = CASE WHEN excluded.latest_at >= latest_at THEN excluded.latest ELSE latest END,
         latest_at = CASE WHEN excluded.latest_at >= latest_at THEN excluded.latest_at ELSE latest_at END`,
      chunk,
    );
  }
  if (uniques.length === 0) return;
  const urows = uniques.map((u) => [u.meterId, u.minute, u.groupKey, u.value]);
  for (const chunk of jsonChunks(urows)) {
    sql.exec(
      `INSERT INTO uniques (meter_id, minute, group_key, value)
       SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?) WHERE true
       ON CONFLICT DO NOTHING`,
      chunk,
    );
  }
}

export type BucketRow = Bucket & Record<string, SqlStorageValue>;

/** In (minute, group_key) order: foldBuckets' LATEST tie-break follows it, and D1 reports mirror that rule. */
export function readBuckets(sql: Sql, meterId: string, fromMinute: number, toMinute: number): BucketRow[] {
  return sql.all<BucketRow>(
    "SELECT minute, group_key, sum, count, min, max, latest_at, latest FROM buckets WHERE meter_id = ? AND minute >= ? AND minute < ? ORDER BY minute, group_key",
    meterId,
    fromMinute,
    toMinute,
  );
}

export interface UniqueRow extends Record<string, SqlStorageValue> {
  minute: number;
  group_key: string;
  value: string;
}

export function readUniques(sql: Sql, meterId: string, fromMinute: number, toMinute: number): UniqueRow[] {
  return sql.all<UniqueRow>(
    "SELECT minute, group_key, value FROM uniques WHERE meter_id = ? AND minute >= ? AND minute < ? ORDER BY minute",
    meterId,
    fromMinute,
    toMinute,
  );
}

/** Forgets a meter's buckets from `fromMinute` on (all of them with 0), before re-metering those minutes. */
export function dropBuckets(sql: Sql, meterId: string, fromMinute = 0): void {
  markDropped(sql, meterId, fromMinute);
  sql.exec("DELETE FROM buckets WHERE meter_id = ? AND minute >= ?", meterId, fromMinute);
  sql.exec("DELETE FROM uniques WHERE meter_id = ? AND minute >= ?", meterId, fromMinute);
}
