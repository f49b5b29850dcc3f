import { and, asc, count, desc, eq, inArray, isNull, or, sql, type SQL } from "drizzle-orm";
import type { Db } from "./client";
import { entitlementIndex, grantIndex } from "./schema";

export type GrantIndexRow = typeof grantIndex.$inferSelect;

/** Idempotent: a retried create may index the same id again. A new grant was last updated when created. */
export async function indexGrant(db: Db, row: Omit<GrantIndexRow, "entitlementId" | "updatedAt"> & { entitlementId?: string | null }): Promise<void> {
  await db
    .insert(grantIndex)
    .values({ ...row, updatedAt: row.createdAt })
    .onConflictDoUpdate({ target: grantIndex.id, set: { subject: row.subject } });
}

/** Once the object has created the grant: what the namespace-wide list filters by, and its own updatedAt. */
export async function setGrantEntitlement(db: Db, namespace: string, id: string, entitlementId: string, updatedAt: number): Promise<void> {
  await db.update(grantIndex).set({ entitlementId, updatedAt }).where(and(eq(grantIndex.namespace, namespace), eq(grantIndex.id, id)));
}

/**
 * Records grants' updatedAt as their objects have it: after a void, and to repair rows a list found
 * behind (a failed write, older code). One statement however many: the rows travel as one bound JSON string.
 */
export async function setGrantsUpdatedAt(db: Db, namespace: string, rows: readonly { id: string; at: number }[]): Promise<void> {
  if (!rows.length) return;
  const json = JSON.stringify(rows.map((r) => [r.id, r.at]));
  await db.run(sql`UPDATE grant_index SET updated_at = (SELECT value->>1 FROM json_each(${json}) WHERE value->>0 = grant_index.id)
    WHERE namespace = ${namespace} AND id IN (SELECT value->>0 FROM json_each(${json}))`);
}

export async function findGrantIndex(db: Db, namespace: string, id: string): Promise<GrantIndexRow | undefined> {
  const rows = await db.select().from(grantIndex).where(and(eq(grantIndex.namespace, namespace), eq(grantIndex.id, id))).limit(1);
  return rows[0];
}

/** Best effort: forgets index rows whose grant was never created (the DO refused it). */
export async function forgetGrantIndex(db: Db, namespace: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.delete(grantIndex).where(and(eq(grantIndex.namespace, namespace), inArray(grantIndex.id, [...ids])));
}

export interface GrantIndexQuery {
  subjects: readonly string[];
  /** Feature ids or keys, matched through the grant's entitlement in entitlement_index. */
  features: readonly string[];
  includeDeleted: boolean;
  orderBy: "id" | "createdAt" | "updatedAt";
  order: "ASC" | "DESC";
  offset: number;
  limit: number;
}

export interface GrantListRow {
  id: string;
  subject: string;
  entitlementId: string | null;
  updatedAt: number | null;
  /** When the grant's entitlement was deleted (null: live, or not in entitlement_index). */
  deletedAt: number | null;
}

/**
 * One page of the namespace's grants and how many match in all. A grant whose entitlement is not in
 * entitlement_index (created before it existed) or whose entitlement_id is unknown matches no feature
 * filter and counts as live.
 */
export async function listGrantIndex(db: Db, namespace: string, q: GrantIndexQuery): Promise<{ rows: GrantListRow[]; total: number }> {
  const where: SQL[] = [eq(grantIndex.namespace, namespace)];
  if (q.subjects.length) where.push(inArray(grantIndex.subject, [...q.subjects]));
  if (q.features.length) where.push(or(inArray(entitlementIndex.featureKey, [...q.features]), inArray(entitlementIndex.featureId, [...q.features]))!);
  if (!q.includeDeleted) where.push(isNull(entitlementIndex.deletedAt));
  const joined = and(eq(entitlementIndex.namespace, grantIndex.namespace), eq(entitlementIndex.id, grantIndex.entitlementId));
  const dir = q.order === "DESC" ? desc : asc;
  const by = q.orderBy === "id" ? [dir(grantIndex.id)] : [dir(q.orderBy === "createdAt" ? grantIndex.createdAt : grantIndex.updatedAt), dir(grantIndex.id)];
  const [rows, total] = await Promise.all([
    db
      .select({ id: grantIndex.id, subject: grantIndex.subject, entitlementId: grantIndex.entitlementId, updatedAt: grantIndex.updatedAt, deletedAt: entitlementIndex.deletedAt })
      .from(grantIndex)
      .leftJoin(entitlementIndex, joined)
      .where(and(...where))
      .orderBy(...by)
      .limit(q.limit)
      .offset(q.offset),
    db.select({ n: count() }).from(grantIndex).leftJoin(entitlementIndex, joined).where(and(...where)),
  ]);
  return { rows, total: total[0]?.n ?? 0 };
}
