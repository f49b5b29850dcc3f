import { expiresAt, truncMinute, type EntitlementCreate, type EntitlementDef, type EntitlementValue, type GrantCreate } from "../domain/entitlement";
import { periodContaining, periodStartsBetween } from "../domain/periods";
import { iso } from "../domain/time";
import { fail, findEntitlement, findForValue, hasLiveEntitlement, insertEntitlement, markDeleted, ok, saveState, toRecord, type EntitlementRecord, type EntitlementRow, type Result } from "./entitlements";
import { findGrant, grantsOf, insertGrant, loadGrants, markVoided, toGrants, type GrantRow } from "./grants";
import { balanceAt, balanceNow, ensureCurrent, rebuild, startSegment, toValue } from "./segments";
import { keepIf } from "./event-log";
import { balanceHistory, type BalanceHistory, type HistoryQuery } from "./history";
import type { Sql } from "./sql";

/**
 * The entitlement and grant operations of one subject, each run inside one transaction of its
 * Durable Object (do.ts). Validation that needs the subject's state lives here; validation of the
 * request's shape happened at the edge.
 */

const NOT_FOUND_ENTITLEMENT = (idOrFeature: string): Result<never> => ({
  ok: false,
  code: "not_found",
  detail: `the subject has no entitlement ${idOrFeature}`,
  missing: "entitlement",
});

/** How many usage periods before now measurement may start (each is rolled over when the entitlement is next used). */
export const MAX_PERIODS_BEHIND = 1000;

export function createEntitlement(sql: Sql, input: EntitlementCreate, now: number): Result<EntitlementRecord> {
  if (hasLiveEntitlement(sql, input.feature.key)) {
    return fail("conflict", `the subject already has an entitlement for feature ${input.feature.key}; delete it before creating another`);
  }
  if (findEntitlement(sql, input.id, { includeDeleted: true })) return fail("conflict", `entitlement ${input.id} already exists`);
  const up = input.usagePeriod;
  const anchor = up ? truncMinute(up.anchor ?? now) : null;
  const base = { id: input.id, featureId: input.feature.id, featureKey: input.feature.key, type: input.type, anchor, createdAt: now, updatedAt: now, deletedAt: null };
  const empty = { segStart: 0, segEnd: 0, startState: { balances: {}, overage: 0 }, phases: [] as [number, number][], latestAt: null, latest: null };
  const mi = input.metered;
  if (!mi) {
    const def: EntitlementDef = { type: input.type, metadata: input.metadata, interval: up?.interval ?? null, config: input.config, metered: null };
    const row: EntitlementRow = { ...base, ...empty, def };
    insertEntitlement(sql, row);
    return ok(toRecord(row, now));
  }
  if (!up || anchor === null) return fail("validation_failed", "usagePeriod is required for metered entitlements", "usagePeriod");

  const mf = mi.measureUsageFrom;
  const from = mf === null || mf === "NOW" ? truncMinute(now) : mf === "CURRENT_PERIOD_START" ? periodContaining(anchor, up.interval, now).from : truncMinute(mf);
  if (from > now) return fail("validation_failed", `measureUsageFrom ${iso(from)} is in the future`, "measureUsageFrom");
  // The entitlement catches up on every period since `from`, one transaction step each: measuring from
  // year 0001 with DAY periods meant 740,000 rollovers and a Durable Object stuck in that loop.
  if (periodStartsBetween(anchor, up.interval, from, now, MAX_PERIODS_BEHIND + 1).length > MAX_PERIODS_BEHIND) {
    return fail("validation_failed", `measureUsageFrom ${iso(from)} is more than ${MAX_PERIODS_BEHIND} usage periods (${up.interval}) ago`, "measureUsageFrom");
  }

  const def: EntitlementDef = {
    type: "metered",
    metadata: input.metadata,
    interval: up.interval,
    config: null,
    metered: {
      meterId: mi.meter.id,
      meterSlug: mi.meter.slug,
      aggregation: mi.meter.aggregation,
      filters: mi.filters,
      ...(mi.advancedFilters?.length ? { advancedFilters: mi.advancedFilters } : {}),
      isSoftLimit: mi.isSoftLimit,
      preserveOverageAtReset: mi.preserveOverageAtReset,
      issueAfterReset: mi.issueAfterReset,
      issueAfterResetPriority: mi.issueAfterResetPriority,
      measureUsageFrom: from,
    },
  };
  // The first period starts at the start of measurement (as OpenMeter's), and ends where the anchor says.
  const row: EntitlementRow = { ...base, ...empty, def, segStart: from, segEnd: periodContaining(anchor, up.interval, from).to };
  insertEntitlement(sql, row);
  if (mi.issueAfterReset !== null && mi.issueAfterReset > 0 && mi.defaultGrantId) {
    // OpenMeter's default grant: effective from the start of measurement, min = max rollover =
    // amount, so every reset brings it back to the full amount, and, as OpenMeter makes it (its API
    // requires an expiration on every grant), expiring after 100 years — counted from now when
    // measurement starts in the past (measureUsageFrom), so that it is never born expired.
    const amount = mi.issueAfterReset;
    const expiration = { duration: "YEAR", count: 100 + Math.max(0, new Date(now).getUTCFullYear() - new Date(from).getUTCFullYear()) } as const;
    insertGrant(sql, {
      id: mi.defaultGrantId,
      entitlementId: row.id,
      def: { amount, priority: mi.issueAfterResetPriority ?? 1, effectiveAt: from, expiration, expiresAt: expiresAt(from, expiration), minRolloverAmount: amount, maxRolloverAmount: amount, metadata: null, annotations: { issueAfterReset: true } },
      voidedAt: null,
      createdAt: now,
      updatedAt: now,
    });
  }
  const grants = grantsOf(sql, row.id);
  startSegment(sql, row, grants, from, row.segEnd, { balances: {}, overage: 0 }, "created", now);
  ensureCurrent(sql, row, grants, now);
  return ok(toRecord(row, now));
}

export function findLive(sql: Sql, idOrFeature: string): Result<EntitlementRow> {
  const e = findEntitlement(sql, idOrFeature);
  return e ? ok(e) : NOT_FOUND_ENTITLEMENT(idOrFeature);
}

/** Brings a metered entitlement's segment up to `now` (a read may roll a period over). */
function current(sql: Sql, e: EntitlementRow, now: number): EntitlementRow {
  if (e.def.metered) ensureCurrent(sql, e, grantsOf(sql, e.id), now);
  return e;
}

export function getEntitlement(sql: Sql, idOrFeature: string, now: number): Result<EntitlementRecord> {
  const e = findEntitlement(sql, idOrFeature);
  return e ? ok(toRecord(current(sql, e, now), now)) : NOT_FOUND_ENTITLEMENT(idOrFeature);
}

/** Answers the id of the entitlement deleted (the route may name it by feature key). */
export function deleteEntitlement(sql: Sql, idOrFeature: string, now: number): Result<{ id: string }> {
  const e = findEntitlement(sql, idOrFeature);
  if (!e) return NOT_FOUND_ENTITLEMENT(idOrFeature);
  markDeleted(sql, e.id, now);
  return ok({ id: e.id });
}

/**
 * OpenMeter's override: the live entitlement named is deleted and `input` (for the same feature) is
 * created in its place, both or neither (a refused create keeps the old one live).
 */
export function overrideEntitlement(sql: Sql, idOrFeature: string, input: EntitlementCreate, now: number): Result<{ replaced: string; entitlement: EntitlementRecord }> {
  const old = findEntitlement(sql, idOrFeature);
  if (!old) return NOT_FOUND_ENTITLEMENT(idOrFeature);
  // By key: a feature archived and created again under its key is still "the same feature" to replace.
  if (old.featureKey !== input.feature.key) {
    return fail("validation_failed", `entitlement ${old.id} is for feature ${old.featureKey}, not ${input.feature.key}: an override keeps the feature`, "featureKey");
  }
  let created: Result<EntitlementRecord> = NOT_FOUND_ENTITLEMENT(idOrFeature);
  keepIf(sql, () => {
    markDeleted(sql, old.id, now);
    created = createEntitlement(sql, input, now);
    return created.ok;
  });
  return created.ok ? ok({ replaced: old.id, entitlement: created.value }) : created;
}

export function entitlementValue(sql: Sql, idOrFeature: string, time: number | null, now: number): Result<EntitlementValue & { entitlementId: string }> {
  const e = findForValue(sql, idOrFeature);
  if (!e) return NOT_FOUND_ENTITLEMENT(idOrFeature);
  if (!e.def.metered) return ok({ entitlementId: e.id, hasAccess: true, ...(e.def.config !== null ? { config: e.def.config } : {}) });
  const grants = grantsOf(sql, e.id);
  if (time === null || time >= now) return ok({ entitlementId: e.id, ...toValue(e, balanceNow(sql, e, grants, now)) });
  ensureCurrent(sql, e, grants, now);
  return ok({ entitlementId: e.id, ...toValue(e, balanceAt(sql, e, grants, time)) });
}

export function entitlementHistory(sql: Sql, idOrFeature: string, q: HistoryQuery, now: number): Result<BalanceHistory> {
  const e = findEntitlement(sql, idOrFeature);
  if (!e) return NOT_FOUND_ENTITLEMENT(idOrFeature);
  if (!e.def.metered) return fail("validation_failed", `entitlement ${e.id} is ${e.type}: only metered entitlements have a usage history`);
  const grants = grantsOf(sql, e.id);
  ensureCurrent(sql, e, grants, now);
  return balanceHistory(sql, e, e.def.metered, grants, q, now);
}

export function listGrants(sql: Sql, idOrFeature: string, includeDeleted = false): Result<GrantRow[]> {
  const e = findEntitlement(sql, idOrFeature, { includeDeleted });
  return e ? ok(loadGrants(sql, e.id)) : NOT_FOUND_ENTITLEMENT(idOrFeature);
}

export function createGrant(sql: Sql, idOrFeature: string, input: GrantCreate, now: number): Result<GrantRow> {
  const e = findEntitlement(sql, idOrFeature);
  if (!e) return NOT_FOUND_ENTITLEMENT(idOrFeature);
  if (!e.def.metered) return fail("validation_failed", `entitlement ${e.id} is ${e.type}: grants can only be issued for metered entitlements`);
  if (findGrant(sql, input.id)) return fail("conflict", `grant ${input.id} already exists`);
  const before = loadGrants(sql, e.id);
  ensureCurrent(sql, e, toGrants(before), now);
  const effectiveAt = truncMinute(input.effectiveAt);
  if (effectiveAt < e.segStart) {
    return fail("validation_failed", `effectiveAt ${iso(effectiveAt)} is before the current usage period, which started at ${iso(e.segStart)}`, "effectiveAt");
  }
  const grant: GrantRow = {
    id: input.id,
    entitlementId: e.id,
    def: {
      amount: input.amount,
      priority: input.priority,
      effectiveAt,
      expiration: input.expiration,
      expiresAt: expiresAt(effectiveAt, input.expiration),
      minRolloverAmount: input.minRolloverAmount,
      maxRolloverAmount: input.maxRolloverAmount,
      metadata: input.metadata,
      annotations: null,
    },
    voidedAt: null,
    createdAt: now,
    updatedAt: now,
  };
  insertGrant(sql, grant);
  // The grant adds phase boundaries (its start and expiry): split the counters along them.
  rebuild(sql, e, toGrants([...before, grant]));
  saveState(sql, e);
  return ok(grant);
}

/** Answers the grant's new updatedAt, which D1's grant_index orders the namespace-wide list by. */
export function voidGrant(sql: Sql, grantId: string, at: number | null, now: number): Result<number> {
  const g = findGrant(sql, grantId);
  const e = g && findEntitlement(sql, g.entitlementId);
  if (!g || !e) return fail("not_found", `no grant ${grantId}`);
  if (g.voidedAt !== null) return fail("conflict", `grant ${grantId} was already voided at ${iso(g.voidedAt)}`);
  const grants = loadGrants(sql, e.id);
  ensureCurrent(sql, e, toGrants(grants), now);
  const voidAt = truncMinute(at ?? now);
  if (voidAt > now) return fail("validation_failed", `at ${iso(voidAt)} is in the future; a grant is voided now or in the past`, "at");
  if (voidAt < e.segStart) return fail("validation_failed", `at ${iso(voidAt)} is before the current usage period, which started at ${iso(e.segStart)}`, "at");
  markVoided(sql, g.id, voidAt, now);
  rebuild(sql, e, toGrants(grants.map((x) => (x.id === g.id ? { ...x, voidedAt: voidAt } : x))));
  saveState(sql, e);
  return ok(now);
}
