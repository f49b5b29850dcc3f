import type { ExpirationPeriod } from "../domain/entitlement";
import type { Grant } from "../domain/grants";
import type { Sql } from "./sql";

/**
 * Grants of the subject's metered entitlements. A grant is never changed once created (OpenMeter:
 * "so that balance is deterministic regardless of when it is queried") except for voiding, and never
 * deleted: the burn-down of the current segment and of past ones (value at a past `time`) needs it.
 */
export interface GrantDef {
  amount: number;
  priority: number;
  effectiveAt: number;
  /** Null only for the grant issueAfterReset creates, which never expires (as in OpenMeter). */
  expiration: ExpirationPeriod | null;
  expiresAt: number | null;
  minRolloverAmount: number;
  maxRolloverAmount: number;
  metadata: Record<string, string> | null;
  annotations: Record<string, unknown> | null;
}

export interface GrantRow {
  id: string;
  entitlementId: string;
  def: GrantDef;
  voidedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

type Raw = { id: string; entitlement_id: string; def: string; voided_at: number | null; created_at: number; updated_at: number };

const fromRaw = (r: Raw): GrantRow => ({
  id: r.id,
  entitlementId: r.entitlement_id,
  def: JSON.parse(r.def) as GrantDef,
  voidedAt: r.voided_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export function loadGrants(sql: Sql, entitlementId: string): GrantRow[] {
  return sql
    .all<Raw>("SELECT id, entitlement_id, def, voided_at, created_at, updated_at FROM grants WHERE entitlement_id = ? ORDER BY created_at, id", entitlementId)
    .map(fromRaw);
}

const GRANTS = "grants:";

/**
 * The entitlement's grants as the burn-down engine takes them, memoised per object (they change only
 * by insertGrant and markVoided, which drop the memo). Frozen: a caller that changed one would
 * change every later balance.
 */
export function grantsOf(sql: Sql, entitlementId: string): readonly Grant[] {
  return sql.memo(GRANTS + entitlementId, () => Object.freeze(toGrants(loadGrants(sql, entitlementId)).map((g) => Object.freeze(g))));
}

export function findGrant(sql: Sql, id: string): GrantRow | undefined {
  const r = sql.one<Raw>("SELECT id, entitlement_id, def, voided_at, created_at, updated_at FROM grants WHERE id = ?", id);
  return r ? fromRaw(r) : undefined;
}

export function insertGrant(sql: Sql, g: GrantRow): void {
  sql.forget(GRANTS + g.entitlementId);
  sql.exec(
    "INSERT INTO grants (id, entitlement_id, def, voided_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
    g.id,
    g.entitlementId,
    JSON.stringify(g.def),
    g.voidedAt,
    g.createdAt,
    g.updatedAt,
  );
}

export function markVoided(sql: Sql, id: string, at: number, now: number): void {
  sql.forget(GRANTS);
  sql.exec("UPDATE grants SET voided_at = ?, updated_at = ? WHERE id = ?", at, now, id);
}

/** The burn-down engine's view of a grant. */
export function toGrant(g: GrantRow): Grant {
  return {
    id: g.id,
    amount: g.def.amount,
    priority: g.def.priority,
    effectiveAt: g.def.effectiveAt,
    expiresAt: g.def.expiresAt,
    createdAt: g.createdAt,
    minRolloverAmount: g.def.minRolloverAmount,
    maxRolloverAmount: g.def.maxRolloverAmount,
    voidedAt: g.voidedAt,
  };
}

export const toGrants = (rows: readonly GrantRow[]): Grant[] => rows.map(toGrant);
