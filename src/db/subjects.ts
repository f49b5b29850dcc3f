import { and, asc, eq, gt, or, sql } from "drizzle-orm";
import { ulid } from "../domain/ids";
import type { Db } from "./client";
import { subjects } from "./schema";
import { owesFirstFlush } from "./snapshots";

/**
 * Lists the subject whose Durable Object has stored its first usage (a row upserted earlier is kept
 * as it is) and notes its first flush as owed; answers its row, in one D1 batch.
 */
export async function registerSubject(db: Db, namespace: string, key: string, now: number): Promise<SubjectRow | undefined> {
  const [, , rows] = await db.batch([
    db.insert(subjects).values({ namespace, key, id: ulid(now), createdAt: now }).onConflictDoNothing(),
    owesFirstFlush(db, namespace, key, now),
    db.select().from(subjects).where(and(eq(subjects.namespace, namespace), eq(subjects.key, key))),
  ]);
  return rows[0];
}

export async function listSubjects(db: Db, namespace: string, after: string | undefined, limit: number) {
  const where = after === undefined ? eq(subjects.namespace, namespace) : and(eq(subjects.namespace, namespace), gt(subjects.key, after));
  return db.select().from(subjects).where(where).orderBy(asc(subjects.key)).limit(limit);
}

/**
 * Every subject of the namespace, read in keyset pages of `pageSize` (each one bounded D1 query);
 * null as soon as there are more than `maxRows` of them or their JSON passes `maxChars`, so a caller
 * never holds more than that and never answers a list it cannot tell is partial.
 */
export async function listEverySubject(db: Db, namespace: string, caps: { maxRows: number; maxChars: number; pageSize: number }): Promise<SubjectRow[] | null> {
  const all: SubjectRow[] = [];
  let chars = 0;
  for (;;) {
    // One row past the cap tells "exactly maxRows" from "more".
    const want = Math.min(caps.pageSize, caps.maxRows + 1 - all.length);
    const page = await listSubjects(db, namespace, all.at(-1)?.key, want);
    for (const row of page) chars += JSON.stringify(row).length;
    all.push(...page);
    if (all.length > caps.maxRows || chars > caps.maxChars) return null;
    if (page.length < want) return all;
  }
}

/**
 * Keys of the namespace's subjects that contain `part` (case-sensitive; every subject when null), in
 * key order, at most `limit`: the subjects OpenMeter's event list reaches with a partial `subject`.
 * instr, not LIKE: keys may hold % and _, and production caps a LIKE pattern at 50 bytes.
 */
export async function subjectKeysContaining(db: Db, namespace: string, part: string | null, limit: number): Promise<string[]> {
  const where = part === null ? eq(subjects.namespace, namespace) : and(eq(subjects.namespace, namespace), sql`instr(${subjects.key}, ${part}) > 0`);
  const rows = await db.select({ key: subjects.key }).from(subjects).where(where).orderBy(asc(subjects.key)).limit(limit);
  return rows.map((r) => r.key);
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

export type SubjectRow = typeof subjects.$inferSelect;

/** The fields an upsert sets; a field left out keeps its value (OpenMeter: "partially updated"). */
export interface SubjectDetails {
  displayName?: string | null;
  metadata?: Record<string, unknown> | null;
  stripeCustomerId?: string | null;
  currentPeriodStart?: number;
  currentPeriodEnd?: number;
}

/**
 * Creates each subject or updates the given fields of it: one statement per subject, all in one D1
 * batch (one transaction), so a failed request stores none of them. Returns the rows, in order.
 */
export async function upsertSubjects(db: Db, namespace: string, items: readonly { key: string; details: SubjectDetails }[], now: number): Promise<SubjectRow[]> {
  const statements = items.map(({ key, details }) => {
    const set = { ...details, updatedAt: now };
    return db
      .insert(subjects)
      .values({ namespace, key, id: ulid(now), createdAt: now, displayName: null, metadata: null, stripeCustomerId: null, currentPeriodStart: null, currentPeriodEnd: null, ...set })
      .onConflictDoUpdate({ target: [subjects.namespace, subjects.key], set })
      .returning();
  });
  const results = await db.batch(statements as [(typeof statements)[number], ...(typeof statements)[number][]]);
  return results.map((rows) => rows[0]!);
}

/**
 * The stored currentPeriodStart/End of the subjects named, by key (absent keys are left out). One
 * statement whatever the count: the keys travel as one bound JSON string (100 parameters at most).
 */
export async function storedPeriods(db: Db, namespace: string, keys: readonly string[]): Promise<Map<string, { start: number | null; end: number | null }>> {
  if (!keys.length) return new Map();
  const rows = await db
    .select({ key: subjects.key, start: subjects.currentPeriodStart, end: subjects.currentPeriodEnd })
    .from(subjects)
    .where(and(eq(subjects.namespace, namespace), sql`${subjects.key} IN (SELECT value FROM json_each(${JSON.stringify(keys)}))`));
  return new Map(rows.map((r) => [r.key, { start: r.start, end: r.end }]));
}

/** By key, else by id (OpenMeter's `{subjectIdOrKey}`). */
export async function findSubject(db: Db, namespace: string, idOrKey: string): Promise<SubjectRow | undefined> {
  const rows = await db.select().from(subjects).where(and(eq(subjects.namespace, namespace), or(eq(subjects.key, idOrKey), eq(subjects.id, idOrKey))));
  return rows.find((r) => r.key === idOrKey) ?? rows[0];
}

export async function deleteSubject(db: Db, namespace: string, key: string): Promise<void> {
  await db.delete(subjects).where(and(eq(subjects.namespace, namespace), eq(subjects.key, key)));
}
