import { iso } from "./time";

/** A subject as D1 keeps it (times in epoch ms; updatedAt null until details were upserted). */
export interface SubjectDef {
  id: string;
  key: string;
  displayName: string | null;
  metadata: Record<string, unknown> | null;
  stripeCustomerId: string | null;
  createdAt: number;
  updatedAt: number | null;
  /** OpenMeter's deprecated fields: null (or absent) until upserted. */
  currentPeriodStart?: number | null;
  currentPeriodEnd?: number | null;
}

/** OpenMeter's Subject. Used by the API and by webhook payloads, which must show a subject exactly as the API does. */
export function renderSubject(r: SubjectDef) {
  return {
    id: r.id,
    key: r.key,
    displayName: r.displayName ?? null,
    metadata: r.metadata ?? null,
    ...(r.stripeCustomerId ? { stripeCustomerId: r.stripeCustomerId } : {}),
    ...(r.currentPeriodStart != null ? { currentPeriodStart: iso(r.currentPeriodStart) } : {}),
    ...(r.currentPeriodEnd != null ? { currentPeriodEnd: iso(r.currentPeriodEnd) } : {}),
    createdAt: iso(r.createdAt),
    updatedAt: iso(r.updatedAt ?? r.createdAt),
  };
}

export type SubjectApi = ReturnType<typeof renderSubject>;
