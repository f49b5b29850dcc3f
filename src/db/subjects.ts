import { and, asc, eq, gt } from "drizzle-orm";
import { ulid } from "../domain/ids";
import type { Db } from "./client";
import { subjects } from "./schema";

export async function registerSubject(db: Db, namespace: string, key: string, now: number): Promise<void> {
  await db.insert(subjects).values({ namespace, key, id: ulid(now), createdAt: now }).onConflictDoNothing();
}

export async function listSubjects(db: Db, namespace: string, after: string | undefined, limit: number) {
  const where = after === undefined ? eq(subjects.namespace, namespace) : and(eq(subjects.namespace, namespace), gt(subjects.key, after));
  return db.select().from(subjects).where(where).orderBy(asc(subjects.key)).limit(limit);
}

export async function subjectExists(db: Db, namespace: string, key: string): Promise<boolean> {
  const rows = await db.select({ key: subjects.key }).from(subjects).where(and(eq(subjects.namespace, namespace), eq(subjects.key, key))).limit(1);
  return rows.length > 0;
}

/** OpenMeter's `{subjectIdOrKey}`: the key of the subject whose id this is, if any. */
export async function subjectKeyById(db: Db, namespace: string, id: string): Promise<string | undefined> {
  const rows = await db.select({ key: subjects.key }).from(subjects).where(and(eq(subjects.namespace, namespace), eq(subjects.id, id))).limit(1);
  return rows[0]?.key;
}
