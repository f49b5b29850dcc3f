import { database } from "../db/client";
import { findSubject, registerSubject } from "../db/subjects";
import { renderSubject, type SubjectApi } from "../domain/subject";
import type { Env } from "../env";
import { getMeta, setMeta } from "./schema";
import type { Sql } from "./sql";
import type { Identity } from "./do";

const KEY = "subject_row";

/**
 * The subject as the subjects API shows it, for webhook payloads (OpenMeter's Subject needs the id
 * and createdAt of the D1 row, which an object cannot read inside its synchronous transactions).
 * The object learns its row when it registers the subject in D1 after its first write, and
 * refreshes it after each delivery run (Notifier.mirror), so details upserted since (displayName,
 * metadata) show from the next notification on.
 */
export function storedSubject(sql: Sql): SubjectApi | undefined {
  const v = getMeta<string>(sql, KEY);
  return v === undefined ? undefined : (JSON.parse(v) as SubjectApi);
}

/** Registers the subject in D1 unless already done; its row, or undefined if D1 failed (logged; the caller retries). */
export async function registerOnce(sql: Sql, env: Env, who: Identity, now: number): Promise<SubjectApi | undefined> {
  const known = storedSubject(sql);
  if (known) return known;
  try {
    const row = await registerSubject(database(env.DB), who.namespace, who.subject, now);
    if (!row) return undefined;
    const api = renderSubject(row);
    setMeta(sql, KEY, JSON.stringify(api));
    return api;
  } catch (e) {
    console.error("subject registration failed; will retry", e);
    return undefined;
  }
}

/**
 * Reads the subject's row again; a deleted row (DELETE /api/v1/subjects) leaves the last one known.
 * Stored only when it changed: it runs after every delivery run, and each write is a billed row.
 */
export async function refreshSubject(sql: Sql, env: Env, who: Identity): Promise<void> {
  const row = await findSubject(database(env.DB), who.namespace, who.subject);
  if (!row || row.key !== who.subject) return;
  const json = JSON.stringify(renderSubject(row));
  if (getMeta<string>(sql, KEY) !== json) setMeta(sql, KEY, json);
}
