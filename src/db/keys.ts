import { and, desc, eq, isNull } from "drizzle-orm";
import type { Db } from "./client";
import { apiKeys } from "./schema";

export type ApiKeyRow = typeof apiKeys.$inferSelect;

export async function findKeyByHash(db: Db, keyHash: string): Promise<ApiKeyRow | undefined> {
  const rows = await db.select().from(apiKeys).where(and(eq(apiKeys.keyHash, keyHash), isNull(apiKeys.revokedAt))).limit(1);
  return rows[0];
}

export async function insertKey(db: Db, row: ApiKeyRow): Promise<void> {
  await db.insert(apiKeys).values(row);
}

export async function listKeys(db: Db, namespace: string): Promise<ApiKeyRow[]> {
  return db.select().from(apiKeys).where(and(eq(apiKeys.namespace, namespace), isNull(apiKeys.revokedAt))).orderBy(desc(apiKeys.createdAt));
}

/** `namespace` null: any namespace (only for the ADMIN_API_KEY, which creates keys everywhere). */
export async function revokeKey(db: Db, namespace: string | null, id: string, now: number): Promise<boolean> {
  const res = await db
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(namespace === null ? undefined : eq(apiKeys.namespace, namespace), eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return res.length > 0;
}
