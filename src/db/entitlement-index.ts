import { and, asc, count, desc, eq, inArray, isNull, or, sql, type SQL } from "drizzle-orm";
import type { Db } from "./client";
import { entitlementIndex, features } from "./schema";

export type EntitlementIndexRow = typeof entitlementIndex.$inferSelect;

/** Idempotent: a retried create may index the same id again. */
export async function indexEntitlement(db: Db, row: EntitlementIndexRow): Promise<void> {
  await db.insert(entitlementIndex).values(row).onConflictDoNothing();
}

/** Best effort: forgets the row of an entitlement the object refused to create. */
export async function forgetEntitlementIndex(db: Db, namespace: string, id: string): Promise<void> {
  await db.delete(entitlementIndex).where(and(eq(entitlementIndex.namespace, namespace), eq(entitlementIndex.id, id)));
}

export async function markEntitlementDeleted(db: Db, namespace: string, id: string, at: number): Promise<void> {
  await db.update(entitlementIndex).set({ deletedAt: at }).where(and(eq(entitlementIndex.namespace, namespace), eq(entitlementIndex.id, id), isNull(entitlementIndex.deletedAt)));
}

/**
 * markEntitlementDeleted for many rows in one statement: a list page may hold up to 1,000 of them,
 * and an invocation may run 1,000 D1 queries. The rows travel as one bound JSON string.
 */
export async function markEntitlementsDeleted(db: Db, namespace: string, rows: readonly { id: string; at: number }[]): Promise<void> {
  if (!rows.length) return;
  const json = JSON.stringify(rows.map((r) => [r.id, r.at]));
  await db.run(sql`UPDATE entitlement_index SET deleted_at = (SELECT value->>1 FROM json_each(${json}) WHERE value->>0 = entitlement_index.id)
    WHERE namespace = ${namespace} AND deleted_at IS NULL AND id IN (SELECT value->>0 FROM json_each(${json}))`);
}

export async function findEntitlementIndex(db: Db, namespace: string, id: string): Promise<EntitlementIndexRow | undefined> {
  const rows = await db.select().from(entitlementIndex).where(and(eq(entitlementIndex.namespace, namespace), eq(entitlementIndex.id, id))).limit(1);
  return rows[0];
}

export interface EntitlementIndexQuery {
  subjects: readonly string[];
  /** Feature ids or keys. */
  features: readonly string[];
  types: readonly string[];
  order: "ASC" | "DESC";
  offset: number;
  limit: number;
}

/** One page of live entitlements (oldest first unless DESC) and how many match in all. */
export async function listEntitlementIndex(db: Db, namespace: string, q: EntitlementIndexQuery): Promise<{ rows: EntitlementIndexRow[]; total: number }> {
  const where: SQL[] = [eq(entitlementIndex.namespace, namespace), isNull(entitlementIndex.deletedAt)];
  if (q.subjects.length) where.push(inArray(entitlementIndex.subject, [...q.subjects]));
  if (q.features.length) where.push(or(inArray(entitlementIndex.featureKey, [...q.features]), inArray(entitlementIndex.featureId, [...q.features]))!);
  if (q.types.length) where.push(inArray(entitlementIndex.type, [...q.types]));
  const by = q.order === "DESC" ? [desc(entitlementIndex.createdAt), desc(entitlementIndex.id)] : [asc(entitlementIndex.createdAt), asc(entitlementIndex.id)];
  const [rows, total] = await Promise.all([
    db.select().from(entitlementIndex).where(and(...where)).orderBy(...by).limit(q.limit).offset(q.offset),
    db.select({ n: count() }).from(entitlementIndex).where(and(...where)),
  ]);
  return { rows, total: total[0]?.n ?? 0 };
}

/**
 * Up to `limit` index rows of live entitlements whose feature (archived or not) is metered by the
 * meter `slug` (and, given `featureIds`, is one of them), oldest first. A row may be stale (a create
 * that failed after indexing, a deletion whose mark failed): callers confirm with the subject's object.
 */
export async function liveEntitlementsOfMeter(db: Db, namespace: string, slug: string, limit: number, featureIds?: readonly string[]) {
  const where: SQL[] = [eq(entitlementIndex.namespace, namespace), isNull(entitlementIndex.deletedAt), eq(features.meterSlug, slug)];
  // One bound JSON array, however many features.
  if (featureIds) where.push(sql`${entitlementIndex.featureId} IN (SELECT value FROM json_each(${JSON.stringify(featureIds)}))`);
  return db
    .select({ id: entitlementIndex.id, subject: entitlementIndex.subject, featureKey: entitlementIndex.featureKey })
    .from(entitlementIndex)
    .innerJoin(features, and(eq(features.namespace, entitlementIndex.namespace), eq(features.id, entitlementIndex.featureId)))
    .where(and(...where))
    .orderBy(asc(entitlementIndex.createdAt), asc(entitlementIndex.id))
    .limit(limit);
}
