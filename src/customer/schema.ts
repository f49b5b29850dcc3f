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
 * meta     identity (namespace, subject), config version, pruning watermark, schema version.
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
];

export function migrate(sql: Sql): void {
  // meta exists before any migration: it holds the version that says which ones have run.
  sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID");
  const current = Number(sql.one<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'")?.value ?? 0);
  if (current >= MIGRATIONS.length) return;
  sql.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) {
      sql.exec(MIGRATIONS[v]!);
    }
    sql.exec("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", MIGRATIONS.length);
  });
}

export function getMeta<T extends SqlStorageValue>(sql: Sql, key: string): T | undefined {
  return sql.one<{ value: T }>("SELECT value FROM meta WHERE key = ?", key)?.value;
}

export function setMeta(sql: Sql, key: string, value: SqlStorageValue): void {
  sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
}
