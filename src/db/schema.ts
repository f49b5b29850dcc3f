import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import type { FilterString } from "../domain/group-filter";

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
    // OpenMeter's subject details (POST /api/v1/subjects); null until a client upserts them.
    displayName: text("display_name"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown> | null>(),
    stripeCustomerId: text("stripe_customer_id"),
    updatedAt: integer("updated_at"),
    // OpenMeter's deprecated SubjectUpsert fields, kept and answered as given; nothing here reads them.
    currentPeriodStart: integer("current_period_start"),
    currentPeriodEnd: integer("current_period_end"),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.key] })],
);

/**
 * OpenMeter features: what an entitlement grants access to. A metered feature names a meter by slug
 * (resolved to the meter's id when an entitlement is created, as OpenMeter does). Archiving keeps the
 * row so existing entitlements still resolve; the key becomes free for a new feature.
 */
export const features = sqliteTable(
  "features",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    key: text("key").notNull(),
    name: text("name").notNull(),
    meterSlug: text("meter_slug"),
    meterGroupByFilters: text("meter_group_by_filters", { mode: "json" }).$type<Record<string, string> | null>(),
    advancedMeterGroupByFilters: text("advanced_meter_group_by_filters", { mode: "json" }).$type<Record<string, FilterString> | null>(),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, string> | null>(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    archivedAt: integer("archived_at"),
  },
  (t) => [uniqueIndex("features_ns_key_live").on(t.namespace, t.key).where(sql`archived_at IS NULL`), index("features_ns").on(t.namespace)],
);

/**
 * Where each entitlement lives, for OpenMeter's namespace-wide `GET /api/v1/entitlements` and
 * `GET /api/v1/entitlements/{id}`, which name no subject. Entitlements themselves are kept in their
 * subject's Durable Object. Written before the entitlement (as grant_index); `deleted_at` is set
 * after the object deleted it, so a list pages over live rows only.
 */
export const entitlementIndex = sqliteTable(
  "entitlement_index",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    subject: text("subject").notNull(),
    featureId: text("feature_id").notNull(),
    featureKey: text("feature_key").notNull(),
    type: text("type").notNull(),
    createdAt: integer("created_at").notNull(),
    deletedAt: integer("deleted_at"),
  },
  (t) => [index("entitlement_index_ns").on(t.namespace, t.createdAt)],
);

/**
 * Where each grant lives: grants are kept in their subject's Durable Object, but
 * `DELETE /api/v1/grants/{grantId}` and `GET /api/v1/grants` name no subject. Written before the
 * grant itself, so a grant is never unreachable; a row whose grant was never created only makes that
 * id answer 404. `entitlement_id` is filled in once the object has created the grant (null for
 * grants from before migration 0007, or when that write failed): the list filters by feature and
 * leaves out deleted entitlements' grants through entitlement_index.
 */
export const grantIndex = sqliteTable(
  "grant_index",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    subject: text("subject").notNull(),
    createdAt: integer("created_at").notNull(),
    entitlementId: text("entitlement_id"),
    // The grant's updatedAt, for the list's default order: set at creation, and after the object voids
    // it (the only change a grant sees). Null only for a row written by code older than migration 0010 (the list repairs it).
    updatedAt: integer("updated_at"),
  },
  (t) => [index("grant_index_ns").on(t.namespace), index("grant_index_ns_created").on(t.namespace, t.createdAt), index("grant_index_ns_updated").on(t.namespace, t.updatedAt)],
);

/** Webhook channels. The signing secret is kept in the clear: it is needed to sign, not just to check. */
export const notificationChannels = sqliteTable(
  "notification_channels",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    name: text("name").notNull(),
    url: text("url").notNull(),
    customHeaders: text("custom_headers", { mode: "json" }).$type<Record<string, string>>().notNull(),
    signingSecret: text("signing_secret").notNull(),
    disabled: integer("disabled", { mode: "boolean" }).notNull(),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, string> | null>(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    deletedAt: integer("deleted_at"),
  },
  (t) => [index("notification_channels_ns").on(t.namespace)],
);

export const notificationRules = sqliteTable(
  "notification_rules",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    type: text("type").notNull(),
    name: text("name").notNull(),
    disabled: integer("disabled", { mode: "boolean" }).notNull(),
    channels: text("channels", { mode: "json" }).$type<string[]>().notNull(),
    features: text("features", { mode: "json" }).$type<string[]>().notNull(),
    thresholds: text("thresholds", { mode: "json" }).$type<{ type: string; value: number }[]>().notNull(),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, string> | null>(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    deletedAt: integer("deleted_at"),
  },
  (t) => [index("notification_rules_ns").on(t.namespace)],
);

/**
 * A copy of each notification and its delivery status, for namespace-wide listing. The customer
 * Durable Object's outbox is the truth; it rewrites its row here (absolute values) after each change.
 */
export const notificationEvents = sqliteTable(
  "notification_events",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    ruleId: text("rule_id").notNull(),
    type: text("type").notNull(),
    subject: text("subject").notNull(),
    featureKey: text("feature_key"),
    // For the list's `feature` filter, which takes ids as well as keys (migration 0008 fills older rows from their payloads).
    featureId: text("feature_id"),
    createdAt: integer("created_at").notNull(),
    payload: text("payload", { mode: "json" }).$type<unknown>().notNull(),
    deliveries: text("deliveries", { mode: "json" }).$type<unknown[]>().notNull(),
    // OpenMeter's system annotations; set only on a rule test's event (`notification.rule.test`).
    annotations: text("annotations", { mode: "json" }).$type<Record<string, unknown> | null>(),
  },
  (t) => [index("notification_events_ns_time").on(t.namespace, t.createdAt)],
);

/** A snapshot row's subject, group and running aggregates (the columns of a DO bucket), for one window or one day. */
const subjectAggregates = () => ({
  subject: text("subject").notNull(),
  groupKey: text("group_key").notNull(),
  sum: real("sum").notNull(),
  count: integer("count").notNull(),
  min: real("min"),
  max: real("max"),
  latestAt: integer("latest_at").notNull(),
  latest: real("latest"),
});

/**
 * Usage snapshots: each customer Durable Object's minute buckets folded into 15-minute rows (see
 * src/domain/rollup.ts for why 15 minutes), written with absolute values by the DO's flush, so a
 * repeated flush rewrites the same values. The key puts the window before the subject: reports
 * scan one meter's time range across all subjects, and a flush addresses (window, subject) exactly.
 * Retention pruning walks `meters` and this key's (namespace, meter_id, window_start) prefix, so
 * no second index costs a write per new row.
 */
export const usageSnapshots = sqliteTable(
  "usage_snapshots",
  {
    namespace: text("namespace").notNull(),
    meterId: text("meter_id").notNull(),
    windowStart: integer("window_start").notNull(),
    ...subjectAggregates(),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.meterId, t.windowStart, t.subject, t.groupKey] })],
);

/**
 * The same rows folded per UTC day, rewritten from a day's 15-minute rows by every flush that touches
 * the day (src/db/snapshots.ts): a month's report reads one row per subject and group a day instead
 * of 96. Reports use them for the whole UTC days inside a window and the 15-minute rows for the rest
 * (src/db/reports.ts), so every zone's windows stay exact. UNIQUE_COUNT reports never read them.
 */
export const usageSnapshotDays = sqliteTable(
  "usage_snapshot_days",
  {
    namespace: text("namespace").notNull(),
    meterId: text("meter_id").notNull(),
    dayStart: integer("day_start").notNull(),
    ...subjectAggregates(),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.meterId, t.dayStart, t.subject, t.groupKey] })],
);

/**
 * The distinct values a UNIQUE_COUNT meter saw per snapshot row: distinct counts do not add up
 * across rows or subjects, so reports count distinct values over the union instead.
 */
export const usageSnapshotUniques = sqliteTable(
  "usage_snapshot_uniques",
  {
    namespace: text("namespace").notNull(),
    meterId: text("meter_id").notNull(),
    windowStart: integer("window_start").notNull(),
    subject: text("subject").notNull(),
    groupKey: text("group_key").notNull(),
    value: text("value").notNull(),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.meterId, t.windowStart, t.subject, t.groupKey, t.value] })],
);

/**
 * Per subject, the last flush D1 applied: `seq` orders flushes (an older one replayed later changes
 * nothing), `as_of` is when the DO read what it sent (everything it had counted by then is here),
 * `pending` that the DO knew it had more to send. The partial index holds only pending rows, so the
 * cron and freshness lookups read those alone and a flush that keeps `pending` unchanged writes no index row.
 */
export const snapshotSubjects = sqliteTable(
  "snapshot_subjects",
  {
    namespace: text("namespace").notNull(),
    subject: text("subject").notNull(),
    seq: integer("seq").notNull(),
    asOf: integer("as_of").notNull(),
    flushedAt: integer("flushed_at").notNull(),
    pending: integer("pending").notNull(),
  },
  (t) => [primaryKey({ columns: [t.namespace, t.subject] }), index("snapshot_subjects_pending").on(t.namespace).where(sql`pending = 1`)],
);

/**
 * Consumer portal tokens (OpenMeter's /api/v1/portal/tokens): each lets its holder read one subject's
 * usage through GET /api/v1/portal/meters/{meterSlug}/query and nothing else. As with API keys, only
 * the token's SHA-256 is kept; the token is shown once. `allowed_meter_slugs` null means every meter.
 */
export const portalTokens = sqliteTable(
  "portal_tokens",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    subject: text("subject").notNull(),
    allowedMeterSlugs: text("allowed_meter_slugs", { mode: "json" }).$type<string[] | null>(),
    tokenHash: text("token_hash").notNull(),
    expiresAt: integer("expires_at").notNull(),
    createdAt: integer("created_at").notNull(),
    invalidatedAt: integer("invalidated_at"),
  },
  (t) => [
    uniqueIndex("portal_tokens_hash").on(t.tokenHash),
    // Listing is newest first per namespace; invalidation, and pruning at creation, go by subject.
    index("portal_tokens_ns_created").on(t.namespace, t.createdAt),
    index("portal_tokens_ns_subject").on(t.namespace, t.subject),
  ],
);
