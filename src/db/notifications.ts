import { and, asc, desc, eq, gte, isNull, lte, sql, type SQL } from "drizzle-orm";
import type { ChannelDef, RuleDef } from "../domain/notification";
import type { Db } from "./client";
import { bumpVersion } from "./meters";
import { notificationChannels, notificationEvents, notificationRules, subjects } from "./schema";

export type ChannelRow = typeof notificationChannels.$inferSelect;
export type RuleRow = typeof notificationRules.$inferSelect;
export type NotificationEventRow = typeof notificationEvents.$inferSelect;
type NotificationEventInsert = typeof notificationEvents.$inferInsert;

export const toChannelDef = (r: ChannelRow): ChannelDef => ({
  id: r.id,
  name: r.name,
  url: r.url,
  customHeaders: r.customHeaders,
  signingSecret: r.signingSecret,
  disabled: r.disabled,
});

export const toRuleDef = (r: RuleRow): RuleDef => ({
  id: r.id,
  name: r.name,
  type: r.type as RuleDef["type"],
  disabled: r.disabled,
  channels: r.channels,
  features: r.features,
  thresholds: r.thresholds as RuleDef["thresholds"],
});

export function listChannelsQuery(db: Db, namespace: string, includeDeleted = false) {
  const where = [eq(notificationChannels.namespace, namespace)];
  if (!includeDeleted) where.push(isNull(notificationChannels.deletedAt));
  return db.select().from(notificationChannels).where(and(...where)).orderBy(notificationChannels.id);
}

export function listRulesQuery(db: Db, namespace: string, includeDeleted = false) {
  const where = [eq(notificationRules.namespace, namespace)];
  if (!includeDeleted) where.push(isNull(notificationRules.deletedAt));
  return db.select().from(notificationRules).where(and(...where)).orderBy(notificationRules.id);
}

/** A JSON array bound as one parameter (`IN (SELECT value FROM json_each(?))`): however long the list, one of the 100 a statement may bind. */
const anyOf = (values: readonly string[]) => sql`(SELECT value FROM json_each(${JSON.stringify(values)}))`;

/**
 * The rules named, deleted ones included (an event outlives the rule that sent it), in one
 * statement whatever the count: a page of events costs one query for its rules, not one per event.
 */
export async function rulesByIds(db: Db, namespace: string, ids: readonly string[]): Promise<RuleRow[]> {
  if (ids.length === 0) return [];
  return db
    .select()
    .from(notificationRules)
    .where(and(eq(notificationRules.namespace, namespace), sql`${notificationRules.id} IN ${anyOf([...new Set(ids)])}`));
}

/** A channel; a deleted one only with `includeDeleted` (GET shows it, with its deletedAt; PUT and DELETE do not find it). */
export async function findChannel(db: Db, namespace: string, id: string, includeDeleted = false): Promise<ChannelRow | undefined> {
  const where = [eq(notificationChannels.namespace, namespace), eq(notificationChannels.id, id)];
  if (!includeDeleted) where.push(isNull(notificationChannels.deletedAt));
  const rows = await db.select().from(notificationChannels).where(and(...where));
  return rows[0];
}

/** A rule; a deleted one only with `includeDeleted` (GET shows it, with its deletedAt, as events do). */
export async function findRule(db: Db, namespace: string, id: string, includeDeleted = false): Promise<RuleRow | undefined> {
  const where = [eq(notificationRules.namespace, namespace), eq(notificationRules.id, id)];
  if (!includeDeleted) where.push(isNull(notificationRules.deletedAt));
  const rows = await db.select().from(notificationRules).where(and(...where));
  return rows[0];
}

/** Channel and rule writes bump the namespace's definition version in the same batch, so DOs pick them up. */
export async function saveChannel(db: Db, row: ChannelRow): Promise<void> {
  await db.batch([
    db.insert(notificationChannels).values(row).onConflictDoUpdate({ target: notificationChannels.id, set: { ...row, id: undefined, namespace: undefined, createdAt: undefined } }),
    bumpVersion(db, row.namespace),
  ]);
}

export async function saveRule(db: Db, row: RuleRow): Promise<void> {
  await db.batch([
    db.insert(notificationRules).values(row).onConflictDoUpdate({ target: notificationRules.id, set: { ...row, id: undefined, namespace: undefined, createdAt: undefined } }),
    bumpVersion(db, row.namespace),
  ]);
}

/** A receiver answered 410 Gone: the channel is disabled for every customer. */
export async function disableChannel(db: Db, namespace: string, id: string, now: number): Promise<void> {
  await db.batch([
    db.update(notificationChannels).set({ disabled: true, updatedAt: now }).where(and(eq(notificationChannels.namespace, namespace), eq(notificationChannels.id, id))),
    bumpVersion(db, namespace),
  ]);
}

/** Rules that still name the channel (a channel in use cannot be deleted). */
export async function rulesUsingChannel(db: Db, namespace: string, channelId: string): Promise<string[]> {
  const rows = await db
    .select({ id: notificationRules.id })
    .from(notificationRules)
    .where(and(eq(notificationRules.namespace, namespace), isNull(notificationRules.deletedAt), sql`EXISTS (SELECT 1 FROM json_each(${notificationRules.channels}) WHERE value = ${channelId})`));
  return rows.map((r) => r.id);
}

export async function upsertNotificationEvents(db: Db, rows: NotificationEventInsert[]): Promise<void> {
  if (rows.length === 0) return;
  // One statement per row (a dozen parameters each) in one batch: far below the 100-parameter limit.
  await db.batch(
    rows.map((r) => db.insert(notificationEvents).values(r).onConflictDoUpdate({ target: notificationEvents.id, set: { deliveries: r.deliveries, payload: r.payload } })) as [never, ...never[]],
  );
}

export interface EventFilter {
  namespace: string;
  from?: number;
  to?: number;
  rules?: string[];
  /** Subject keys or ids. */
  subjects?: string[];
  /** Feature keys or ids. */
  features?: string[];
  /** Channel ids: events with a delivery to one of them. */
  channels?: string[];
  orderBy: "id" | "createdAt";
  order: "ASC" | "DESC";
  limit: number;
  offset: number;
}

export async function listNotificationEvents(db: Db, f: EventFilter): Promise<{ rows: NotificationEventRow[]; total: number }> {
  const where: SQL[] = [eq(notificationEvents.namespace, f.namespace)];
  if (f.from !== undefined) where.push(gte(notificationEvents.createdAt, f.from));
  if (f.to !== undefined) where.push(lte(notificationEvents.createdAt, f.to));
  // Each list is one bound JSON array, so all filters together stay far below 100 parameters.
  if (f.rules?.length) where.push(sql`${notificationEvents.ruleId} IN ${anyOf(f.rules)}`);
  if (f.subjects?.length) {
    // Events keep the subject key; an id is the key of the D1 subject row that has it.
    const ids = sql`(SELECT ${subjects.key} FROM ${subjects} WHERE ${subjects.namespace} = ${f.namespace} AND ${subjects.id} IN ${anyOf(f.subjects)})`;
    where.push(sql`(${notificationEvents.subject} IN ${anyOf(f.subjects)} OR ${notificationEvents.subject} IN ${ids})`);
  }
  if (f.features?.length) where.push(sql`(${notificationEvents.featureKey} IN ${anyOf(f.features)} OR ${notificationEvents.featureId} IN ${anyOf(f.features)})`);
  if (f.channels?.length) {
    where.push(sql`EXISTS (SELECT 1 FROM json_each(${notificationEvents.deliveries}) AS d WHERE json_extract(d.value, '$.channel.id') IN ${anyOf(f.channels)})`);
  }
  const cond = and(...where);
  const dir = f.order === "DESC" ? desc : asc;
  // Ties (events created in the same millisecond) by id, in the same direction, so pages never overlap.
  const orderBy = f.orderBy === "id" ? [dir(notificationEvents.id)] : [dir(notificationEvents.createdAt), dir(notificationEvents.id)];
  const [rows, count] = await db.batch([
    db.select().from(notificationEvents).where(cond).orderBy(...orderBy).limit(f.limit).offset(f.offset),
    db.select({ n: sql<number>`count(*)` }).from(notificationEvents).where(cond),
  ]);
  return { rows, total: count[0]?.n ?? 0 };
}

export async function findNotificationEvent(db: Db, namespace: string, id: string): Promise<NotificationEventRow | undefined> {
  const rows = await db.select().from(notificationEvents).where(and(eq(notificationEvents.namespace, namespace), eq(notificationEvents.id, id)));
  return rows[0];
}
