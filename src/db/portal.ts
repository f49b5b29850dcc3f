import { and, desc, eq, isNull, lt } from "drizzle-orm";
import type { Db } from "./client";
import { portalTokens } from "./schema";

export type PortalTokenRow = typeof portalTokens.$inferSelect;

/**
 * Inserts a token and, in the same batch, deletes the subject's tokens that expired before
 * `pruneBefore`: a portal that mints a token per page view must not grow the table without bound.
 */
export async function insertPortalToken(db: Db, row: PortalTokenRow, pruneBefore: number): Promise<void> {
  await db.batch([
    db
      .delete(portalTokens)
      .where(and(eq(portalTokens.namespace, row.namespace), eq(portalTokens.subject, row.subject), lt(portalTokens.expiresAt, pruneBefore))),
    db.insert(portalTokens).values(row),
  ]);
}

/** The live (not invalidated) token with this hash; expiry is the caller's to judge. */
export async function findPortalTokenByHash(db: Db, tokenHash: string): Promise<PortalTokenRow | undefined> {
  const rows = await db.select().from(portalTokens).where(and(eq(portalTokens.tokenHash, tokenHash), isNull(portalTokens.invalidatedAt))).limit(1);
  return rows[0];
}

/** Newest first; invalidated tokens are left out, expired ones are listed (as expired). */
export async function listPortalTokens(db: Db, namespace: string, limit: number): Promise<PortalTokenRow[]> {
  return db
    .select()
    .from(portalTokens)
    .where(and(eq(portalTokens.namespace, namespace), isNull(portalTokens.invalidatedAt)))
    .orderBy(desc(portalTokens.createdAt))
    .limit(limit);
}

/** Invalidates by id, by subject, or both (AND); answers the ids invalidated now. */
export async function invalidatePortalTokens(db: Db, namespace: string, by: { id?: string; subject?: string }, now: number): Promise<string[]> {
  const rows = await db
    .update(portalTokens)
    .set({ invalidatedAt: now })
    .where(
      and(
        eq(portalTokens.namespace, namespace),
        by.id === undefined ? undefined : eq(portalTokens.id, by.id),
        by.subject === undefined ? undefined : eq(portalTokens.subject, by.subject),
        isNull(portalTokens.invalidatedAt),
      ),
    )
    .returning({ id: portalTokens.id });
  return rows.map((r) => r.id);
}
