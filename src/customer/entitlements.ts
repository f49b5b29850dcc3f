import type { EntitlementDef, EntitlementType } from "../domain/entitlement";
import { ULID_PATTERN } from "../domain/ids";
import type { PeriodStartState } from "../domain/grants";
import { periodContaining, type PeriodInterval } from "../domain/periods";
import type { Sql } from "./sql";

/**
 * Entitlement rows in the subject's Durable Object (schema: schema.ts, version 2). The definition is
 * immutable JSON; the rest is the running state of the current measurement segment, which
 * segments.ts advances and counters.ts adds ingested usage to.
 */

/** Answers of the entitlement RPCs: a failure names an API problem code and says why. */
export type Failure = { ok: false; code: "not_found" | "validation_failed" | "conflict"; detail: string; field?: string; missing?: "subject" | "entitlement" };
export type Result<T> = { ok: true; value: T } | Failure;

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = (code: Failure["code"], detail: string, field?: string): Failure => ({ ok: false, code, detail, ...(field ? { field } : {}) });

export interface EntitlementRow {
  id: string;
  featureId: string;
  featureKey: string;
  type: EntitlementType;
  def: EntitlementDef;
  /** Usage-period anchor: a reset without retainAnchor moves it. */
  anchor: number | null;
  // Metered only: the current measurement segment [segStart, segEnd).
  segStart: number;
  segEnd: number;
  startState: Pick<PeriodStartState, "balances" | "overage">;
  /** [phase start, usage] for SUM/COUNT; phase starts only (usage 0) otherwise. */
  phases: [number, number][];
  latestAt: number | null;
  latest: number | null;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
}

type Raw = {
  id: string;
  feature_id: string;
  feature_key: string;
  type: string;
  def: string;
  anchor: number | null;
  seg_start: number | null;
  seg_end: number | null;
  start_state: string | null;
  phases: string | null;
  latest_at: number | null;
  latest: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
};

function fromRaw(r: Raw): EntitlementRow {
  return {
    id: r.id,
    featureId: r.feature_id,
    featureKey: r.feature_key,
    type: r.type as EntitlementType,
    def: JSON.parse(r.def) as EntitlementDef,
    anchor: r.anchor,
    segStart: r.seg_start ?? 0,
    segEnd: r.seg_end ?? 0,
    startState: r.start_state ? (JSON.parse(r.start_state) as EntitlementRow["startState"]) : { balances: {}, overage: 0 },
    phases: r.phases ? (JSON.parse(r.phases) as [number, number][]) : [],
    latestAt: r.latest_at,
    latest: r.latest,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: r.deleted_at,
  };
}

const COLUMNS = "id, feature_id, feature_key, type, def, anchor, seg_start, seg_end, start_state, phases, latest_at, latest, created_at, updated_at, deleted_at";

/**
 * OpenMeter's `{entitlementIdOrFeatureKey}`: an entitlement id (deleted ones too, when asked), else the
 * live entitlement of that feature key or feature id.
 */
export function findEntitlement(sql: Sql, idOrFeature: string, opts: { includeDeleted?: boolean } = {}): EntitlementRow | undefined {
  const byId = () => {
    const r = sql.one<Raw>(`SELECT ${COLUMNS} FROM entitlements WHERE id = ?`, idOrFeature);
    return r && (r.deleted_at === null || opts.includeDeleted) ? r : undefined;
  };
  const byFeature = () => sql.one<Raw>(`SELECT ${COLUMNS} FROM entitlements WHERE deleted_at IS NULL AND (feature_key = ? OR feature_id = ?)`, idOrFeature, idOrFeature);
  // Feature keys are lowercase and never ULIDs: the hot path (check by feature key) costs one read.
  const r = ULID_PATTERN.test(idOrFeature) ? (byId() ?? byFeature()) : (byFeature() ?? byId());
  return r ? fromRaw(r) : undefined;
}

/**
 * findEntitlement for the paths that read a value (check, entitlement value): a live metered
 * entitlement comes from the liveMetered memo, without a statement. Such a row may be changed only
 * by the functions that write it back (ensureCurrent, the counters).
 */
export function findForValue(sql: Sql, idOrFeature: string): EntitlementRow | undefined {
  const x = idOrFeature;
  return liveMetered(sql).find((e) => e.id === x || e.featureKey === x || e.featureId === x) ?? findEntitlement(sql, x);
}

export function listEntitlements(sql: Sql, includeDeleted: boolean): EntitlementRow[] {
  const where = includeDeleted ? "" : "WHERE deleted_at IS NULL";
  return sql.all<Raw>(`SELECT ${COLUMNS} FROM entitlements ${where} ORDER BY created_at, id`).map(fromRaw);
}

const LIVE_METERED = "entitlements:live-metered";

/**
 * The live metered entitlements: what a counted batch may add usage to. Memoised (read once per
 * object, not per batch): callers may change these rows in place only to write them back at once
 * (saveCounters, saveState), and every other write to `entitlements` drops the memo.
 */
export function liveMetered(sql: Sql): EntitlementRow[] {
  return sql.memo(LIVE_METERED, () => sql.all<Raw>(`SELECT ${COLUMNS} FROM entitlements WHERE deleted_at IS NULL AND type = 'metered'`).map(fromRaw));
}

/** After a write to `entitlements` that the memoised rows may not hold. */
const changed = (sql: Sql) => sql.forget(LIVE_METERED);

export function hasLiveEntitlement(sql: Sql, featureKey: string): boolean {
  return sql.one("SELECT 1 AS x FROM entitlements WHERE deleted_at IS NULL AND feature_key = ?", featureKey) !== undefined;
}

export function insertEntitlement(sql: Sql, e: EntitlementRow): void {
  changed(sql);
  sql.exec(
    `INSERT INTO entitlements (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    e.id,
    e.featureId,
    e.featureKey,
    e.type,
    JSON.stringify(e.def),
    e.anchor,
    e.def.metered ? e.segStart : null,
    e.def.metered ? e.segEnd : null,
    e.def.metered ? JSON.stringify(e.startState) : null,
    e.def.metered ? JSON.stringify(e.phases) : null,
    e.latestAt,
    e.latest,
    e.createdAt,
    e.updatedAt,
    e.deletedAt,
  );
}

/** Writes the running state back (segment, carried balances, counters). */
export function saveState(sql: Sql, e: EntitlementRow): void {
  changed(sql);
  sql.exec(
    "UPDATE entitlements SET anchor = ?, seg_start = ?, seg_end = ?, start_state = ?, phases = ?, latest_at = ?, latest = ?, updated_at = ? WHERE id = ?",
    e.anchor,
    e.segStart,
    e.segEnd,
    JSON.stringify(e.startState),
    JSON.stringify(e.phases),
    e.latestAt,
    e.latest,
    e.updatedAt,
    e.id,
  );
}

/** Only the counters: the per-batch write of the ingest hot path (on the memoised row, which then stays valid). */
export function saveCounters(sql: Sql, e: EntitlementRow): void {
  if (!sql.peek<EntitlementRow[]>(LIVE_METERED)?.includes(e)) changed(sql);
  sql.exec("UPDATE entitlements SET phases = ?, latest_at = ?, latest = ? WHERE id = ?", JSON.stringify(e.phases), e.latestAt, e.latest, e.id);
}

export function markDeleted(sql: Sql, id: string, now: number): void {
  changed(sql);
  sql.exec("UPDATE entitlements SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL", now, now, id);
}

/** An entitlement as the API shows it (times in epoch ms; the HTTP layer renders them). */
export interface EntitlementRecord {
  id: string;
  type: EntitlementType;
  featureId: string;
  featureKey: string;
  metadata: Record<string, string> | null;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
  usagePeriod: { interval: PeriodInterval; anchor: number } | null;
  currentUsagePeriod: { from: number; to: number } | null;
  config: string | null;
  metered: {
    isSoftLimit: boolean;
    preserveOverageAtReset: boolean;
    issueAfterReset: number | null;
    issueAfterResetPriority: number | null;
    lastReset: number;
    measureUsageFrom: number;
  } | null;
}

/** The API view; a metered row must have been brought up to date (segments.ensureCurrent) first. */
export function toRecord(e: EntitlementRow, now: number): EntitlementRecord {
  const usagePeriod = e.def.interval !== null && e.anchor !== null ? { interval: e.def.interval, anchor: e.anchor } : null;
  const m = e.def.metered;
  let current: EntitlementRecord["currentUsagePeriod"] = null;
  if (m) current = { from: e.segStart, to: e.segEnd };
  else if (usagePeriod) current = periodContaining(usagePeriod.anchor, usagePeriod.interval, now);
  return {
    id: e.id,
    type: e.type,
    featureId: e.featureId,
    featureKey: e.featureKey,
    metadata: e.def.metadata,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
    deletedAt: e.deletedAt,
    usagePeriod,
    currentUsagePeriod: current,
    config: e.def.config,
    metered: m
      ? {
          isSoftLimit: m.isSoftLimit,
          preserveOverageAtReset: m.preserveOverageAtReset,
          issueAfterReset: m.issueAfterReset,
          issueAfterResetPriority: m.issueAfterResetPriority,
          lastReset: e.segStart,
          measureUsageFrom: m.measureUsageFrom,
        }
      : null,
  };
}
