import { and, asc, desc, eq, isNull, sql } from "drizzle-orm";
import type { Aggregation, MeterDef } from "../domain/meter";
import type { Db } from "./client";
import { meters, namespaceConfig } from "./schema";

export type MeterRow = typeof meters.$inferSelect;

export function toMeterDef(r: MeterRow): MeterDef {
  return {
    id: r.id,
    slug: r.slug,
    eventType: r.eventType,
    aggregation: r.aggregation as Aggregation,
    valueProperty: r.valueProperty,
    groupBy: r.groupBy,
    eventFrom: r.eventFrom,
  };
}

/** Every definition change (meters, features) bumps it, in the same D1 batch as the change. */
export function bumpVersion(db: Db, namespace: string) {
  return db
    .insert(namespaceConfig)
    .values({ namespace, version: 1 })
    .onConflictDoUpdate({ target: namespaceConfig.namespace, set: { version: sql`${namespaceConfig.version} + 1` } });
}

export function listMetersQuery(db: Db, namespace: string) {
  return db.select().from(meters).where(and(eq(meters.namespace, namespace), isNull(meters.deletedAt))).orderBy(asc(meters.slug));
}

/** OpenMeter's MeterOrderBy values and the columns they sort by (`key` is the slug). */
export const METER_ORDER_BY = { key: meters.slug, name: meters.name, aggregation: meters.aggregation, createdAt: meters.createdAt, updatedAt: meters.updatedAt } as const;

export interface MeterListQuery {
  includeDeleted: boolean;
  orderBy: keyof typeof METER_ORDER_BY;
  order: "ASC" | "DESC";
  /** null: every meter (no page asked for). */
  range: { offset: number; limit: number } | null;
}

/** GET /api/v1/meters. Ties broken by id, so pages neither repeat nor skip a meter (deleted ones may share a slug). */
export function listMeters(db: Db, namespace: string, q: MeterListQuery) {
  const dir = q.order === "DESC" ? desc : asc;
  const where = [eq(meters.namespace, namespace)];
  if (!q.includeDeleted) where.push(isNull(meters.deletedAt));
  const query = db.select().from(meters).where(and(...where)).orderBy(dir(METER_ORDER_BY[q.orderBy]), dir(meters.id)).$dynamic();
  return q.range === null ? query : query.limit(q.range.limit).offset(q.range.offset);
}

/** By slug or id, as OpenMeter's `{meterIdOrSlug}`. */
export async function findMeter(db: Db, namespace: string, idOrSlug: string): Promise<MeterRow | undefined> {
  const rows = await db
    .select()
    .from(meters)
    .where(and(eq(meters.namespace, namespace), isNull(meters.deletedAt), sql`(${meters.slug} = ${idOrSlug} OR ${meters.id} = ${idOrSlug})`))
    .limit(1);
  return rows[0];
}

/** Inserts the meter and bumps the namespace's definition version atomically; false when the slug is taken. */
export async function insertMeter(db: Db, row: MeterRow): Promise<boolean> {
  try {
    await db.batch([db.insert(meters).values(row), bumpVersion(db, row.namespace)]);
    return true;
  } catch (e) {
    if (String((e as Error)?.message ?? e).includes("UNIQUE")) return false;
    throw e;
  }
}

export async function updateMeter(db: Db, row: MeterRow): Promise<void> {
  await db.batch([
    db
      .update(meters)
      .set({ name: row.name, description: row.description, metadata: row.metadata, groupBy: row.groupBy, updatedAt: row.updatedAt })
      .where(and(eq(meters.namespace, row.namespace), eq(meters.id, row.id))),
    bumpVersion(db, row.namespace),
  ]);
}

export async function deleteMeter(db: Db, namespace: string, id: string, now: number): Promise<void> {
  await db.batch([
    db.update(meters).set({ deletedAt: now, updatedAt: now }).where(and(eq(meters.namespace, namespace), eq(meters.id, id))),
    bumpVersion(db, namespace),
  ]);
}

export function configVersionQuery(db: Db, namespace: string) {
  return db.select({ v: namespaceConfig.version }).from(namespaceConfig).where(eq(namespaceConfig.namespace, namespace));
}
