import type { Sql } from "./sql";

/**
 * The customer Durable Object's storage, versioned: each entry runs once, in order, and
 * `meta.schema_version` records how far a DO has come. Append; never edit a shipped entry.
 *
 * events   the dedupe index and the audit trail: one row per (source, id), WITHOUT ROWID so the
 *          primary key is the table and a new event costs one row write. Pruned by event time.
 * buckets  per meter, UTC minute and group-by values: sum, count, min, max, latest. Kept forever.
 * uniques  the distinct values a UNIQUE_COUNT meter saw per bucket (distinct counts do not add up).
 * meters   the meter definitions this DO last counted with, to detect changes and re-meter.
 * meta     identity (namespace, subject), config version, pruning watermark, schema version, due
 *          jobs, and the notification rules and channels, a row each (`notify:rule:<id>`, notify.ts).
 *
 * Version 2 — entitlements (src/customer/entitlements.ts):
 * entitlements         one row per entitlement; `def` is the immutable definition (JSON), the other
 *                      columns the running state of the current measurement segment: [seg_start,
 *                      seg_end) is from the last reset (or period start, or measureUsageFrom) to the
 *                      end of the usage period; start_state holds the grant balances and overage
 *                      carried into it; phases the usage per burn phase (SUM/COUNT running counters);
 *                      latest_at/latest the LATEST value. One live entitlement per feature key.
 * grants               one row per grant, voided in place (never deleted: burn-down history needs it).
 * entitlement_periods  every segment an entitlement has had, with the state it started from: what a
 *                      value at a past `time` is computed from.
 *
 * Version 5 — features (src/customer/features.ts): the namespace's features, for webhook payloads.
 *
 * Snapshots (src/customer/snapshots.ts):
 * snapshot_windows     one row per (meter, 15-minute window) counted in: `version` grows with each
 *                      change, `flushed` is the version D1 last received, `reset` that the window's
 *                      buckets were dropped and rebuilt. Existing buckets start out unflushed.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE events (
     source TEXT NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,
     data TEXT, ingested_at INTEGER NOT NULL,
     PRIMARY KEY (source, id)) WITHOUT ROWID;
   CREATE TABLE buckets (
     meter_id TEXT NOT NULL, minute INTEGER NOT NULL, group_key TEXT NOT NULL,
     sum REAL NOT NULL, count INTEGER NOT NULL, min REAL, max REAL, latest_at INTEGER NOT NULL, latest REAL,
     PRIMARY KEY (meter_id, minute, group_key)) WITHOUT ROWID;
   CREATE TABLE uniques (
     meter_id TEXT NOT NULL, minute INTEGER NOT NULL, group_key TEXT NOT NULL, value TEXT NOT NULL,
     PRIMARY KEY (meter_id, minute, group_key, value)) WITHOUT ROWID;
   CREATE TABLE meters (id TEXT PRIMARY KEY, slug TEXT NOT NULL, fingerprint TEXT NOT NULL, def TEXT NOT NULL) WITHOUT ROWID;`,
  `CREATE TABLE entitlements (
     id TEXT PRIMARY KEY, feature_id TEXT NOT NULL, feature_key TEXT NOT NULL, type TEXT NOT NULL, def TEXT NOT NULL,
     anchor INTEGER, seg_start INTEGER, seg_end INTEGER, start_state TEXT, phases TEXT, latest_at INTEGER, latest REAL,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, deleted_at INTEGER) WITHOUT ROWID;
   CREATE UNIQUE INDEX entitlements_feature_live ON entitlements (feature_key) WHERE deleted_at IS NULL;
   CREATE TABLE grants (
     id TEXT PRIMARY KEY, entitlement_id TEXT NOT NULL, def TEXT NOT NULL, voided_at INTEGER,
     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
   CREATE INDEX grants_entitlement ON grants (entitlement_id);
   CREATE TABLE entitlement_periods (
     entitlement_id TEXT NOT NULL, start_at INTEGER NOT NULL, end_at INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
     PRIMARY KEY (entitlement_id, start_at)) WITHOUT ROWID;`,
  `CREATE TABLE snapshot_windows (
     meter_id TEXT NOT NULL, window_start INTEGER NOT NULL,
     version INTEGER NOT NULL, flushed INTEGER NOT NULL, reset INTEGER NOT NULL,
     PRIMARY KEY (meter_id, window_start)) WITHOUT ROWID;
   INSERT INTO snapshot_windows (meter_id, window_start, version, flushed, reset)
     SELECT DISTINCT meter_id, (minute / 900000) * 900000, 1, 0, 0 FROM buckets;`,
  `CREATE TABLE notifications (
     id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, type TEXT NOT NULL, created_at INTEGER NOT NULL, payload TEXT NOT NULL,
     feature_key TEXT, version INTEGER NOT NULL, mirrored_version INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE deliveries (
     notification_id TEXT NOT NULL, channel_id TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
     attempts INTEGER NOT NULL, next_attempt_at INTEGER, log TEXT NOT NULL, updated_at INTEGER NOT NULL,
     PRIMARY KEY (notification_id, channel_id)) WITHOUT ROWID;
   CREATE TABLE fired (
     rule_id TEXT NOT NULL, entitlement_id TEXT NOT NULL, period INTEGER NOT NULL, threshold_key TEXT NOT NULL,
     PRIMARY KEY (rule_id, entitlement_id, period, threshold_key)) WITHOUT ROWID;`,
  // Forgetting the config version makes the next call answer StaleConfig, so the Worker sends the
  // whole snapshot, features included; unchanged meters are not re-metered (fingerprints match).
  `CREATE TABLE features (id TEXT PRIMARY KEY, def TEXT NOT NULL) WITHOUT ROWID;
   DELETE FROM meta WHERE key = 'config_version';`,
];

export function migrate(sql: Sql): void {
  // Runs at every start of the object: the usual case (schema current) reads one row and writes
  // nothing; a CREATE TABLE IF NOT EXISTS here on every start was DDL for nothing.
  if (schemaVersion(sql) >= MIGRATIONS.length) return;
  // meta exists before any migration: it holds the version that says which ones have run.
  sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID");
  const current = schemaVersion(sql);
  sql.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) {
      sql.exec(MIGRATIONS[v]!);
    }
    sql.exec("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", MIGRATIONS.length);
  });
}

/** Whether anything was ever stored here: `meta` is the first table an object creates. */
export function hasSchema(sql: Sql): boolean {
  return Boolean(sql.one<{ n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'meta'")?.n);
}

function schemaVersion(sql: Sql): number {
  if (!hasSchema(sql)) return 0;
  return Number(sql.one<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'")?.value ?? 0);
}

export function getMeta<T extends SqlStorageValue>(sql: Sql, key: string): T | undefined {
  return sql.one<{ value: T }>("SELECT value FROM meta WHERE key = ?", key)?.value;
}

export function setMeta(sql: Sql, key: string, value: SqlStorageValue): void {
  sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
}
