import { and, asc, eq, inArray, isNull, sql } from "drizzle-orm";
import type { FeatureDef } from "../domain/feature";
import type { Db } from "./client";
import { bumpVersion } from "./meters";
import { features } from "./schema";

export type FeatureRow = typeof features.$inferSelect;

/** Every feature of the namespace, archived ones included (entitlements and rules may still name one). */
export function allFeaturesQuery(db: Db, namespace: string) {
  return db.select().from(features).where(eq(features.namespace, namespace)).orderBy(asc(features.id));
}

export function toFeatureDef({ namespace: _, ...def }: FeatureRow): FeatureDef {
  return def;
}

export async function listFeatures(db: Db, namespace: string, opts: { includeArchived: boolean; meterSlugs?: readonly string[] }): Promise<FeatureRow[]> {
  const where = [eq(features.namespace, namespace)];
  if (!opts.includeArchived) where.push(isNull(features.archivedAt));
  if (opts.meterSlugs?.length) where.push(inArray(features.meterSlug, [...opts.meterSlugs]));
  return db.select().from(features).where(and(...where)).orderBy(asc(features.key), asc(features.createdAt));
}

/**
 * OpenMeter's `{featureId}` also accepts the key. An id finds archived features too (entitlements
 * keep pointing at them); a key finds only the live feature, since archived keys may be reused.
 */
export async function findFeature(db: Db, namespace: string, idOrKey: string): Promise<FeatureRow | undefined> {
  const rows = await db
    .select()
    .from(features)
    .where(and(eq(features.namespace, namespace), sql`(${features.id} = ${idOrKey} OR (${features.key} = ${idOrKey} AND ${features.archivedAt} IS NULL))`))
    .orderBy(sql`${features.id} = ${idOrKey} DESC`)
    .limit(1);
  return rows[0];
}

/** Inserts the feature and bumps the namespace's definition version atomically; false when the key is taken. */
export async function insertFeature(db: Db, row: FeatureRow): Promise<boolean> {
  try {
    await db.batch([db.insert(features).values(row), bumpVersion(db, row.namespace)]);
    return true;
  } catch (e) {
    if (String((e as Error)?.message ?? e).includes("UNIQUE")) return false;
    throw e;
  }
}

export async function archiveFeature(db: Db, namespace: string, id: string, now: number): Promise<void> {
  await db.batch([
    db
      .update(features)
      .set({ archivedAt: now, updatedAt: now })
      .where(and(eq(features.namespace, namespace), eq(features.id, id), isNull(features.archivedAt))),
    bumpVersion(db, namespace),
  ]);
}

