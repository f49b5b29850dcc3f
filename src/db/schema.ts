import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * D1 holds definitions (keys, meters, …) and derived copies for reporting.
 * Every table carries `namespace`, and every query filters on it (tenant isolation).
 * Times are epoch milliseconds.
 */

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    name: text("name").notNull(),
    scopes: text("scopes", { mode: "json" }).$type<string[]>().notNull(),
    // SHA-256 of the secret: the secret itself is shown once and never stored.
    keyHash: text("key_hash").notNull(),
    prefix: text("prefix").notNull(),
    createdAt: integer("created_at").notNull(),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_hash").on(t.keyHash), index("api_keys_ns").on(t.namespace)],
);

export const meters = sqliteTable(
  "meters",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    slug: text("slug").notNull(),
    name: text("name").notNull(),
    description: text("description"),
    eventType: text("event_type").notNull(),
    aggregation: text("aggregation").notNull(),
    valueProperty: text("value_property"),
    groupBy: text("group_by", { mode: "json" }).$type<Record<string, string>>().notNull(),
    eventFrom: integer("event_from"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, string> | null>(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    deletedAt: integer("deleted_at"),
  },
  (t) => [uniqueIndex("meters_ns_slug_live").on(t.namespace, t.slug).where(sql`deleted_at IS NULL`)],
);

/** Bumped with every definition change, so Durable Objects can tell a newer definition set from a stale cache. */
export const namespaceConfig = sqliteTable("namespace_config", {
  namespace: text("namespace").primaryKey(),
  version: integer("version").notNull(),
});

export const subjects = sqliteTable(
  "subjects",
  {
    namespace: text("namespace").notNull(),
    key: text("key").notNull(),
    id: text("id").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.key] })],
);
