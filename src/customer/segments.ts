import { meteredHasAccess, MINUTE_MS, truncMinute, type EntitlementValue } from "../domain/entitlement";
import { burnPhaseStarts, computeBalance, resetBalances, type EntitlementBalance, type Grant, type PeriodStartState, type UsagePoint } from "../domain/grants";
import { nextPeriodStart } from "../domain/periods";
import { iso } from "../domain/time";
import { fail, ok, saveState, type EntitlementRow, type Result } from "./entitlements";
import type { Sql } from "./sql";
import { usagePoints, type Metered } from "./usage";

/**
 * The measurement segments of a metered entitlement and its balance (burn-down: domain/grants.ts).
 *
 * A segment runs from the last reset — an explicit reset, the start of a usage period, or
 * measureUsageFrom — to the end of the usage period. Its usage is kept as running counters, one
 * per burn phase (phases change where a grant becomes active, expires or is voided), so the value
 * at `now` needs no bucket scan: counters.ts adds each counted batch inside the ingest transaction.
 *
 * Periods roll over lazily: the first call that finds now >= segEnd closes the segment (balances at
 * its end, grants rolled over by resetBalances), opens the next and builds its counters from the
 * buckets once — so an idle entitlement catches up on every period it missed, in order.
 *
 * Late events: an event whose time falls in the current segment changes its usage, whenever it
 * arrives. An event whose time is before the segment (a closed period, or before a reset) does not
 * change the current balance — it is stored and visible in meter queries, but a period's carry-over
 * is settled when the period is rolled over, and that is final.
 */

export const ceilMinute = (ms: number) => Math.ceil(ms / MINUTE_MS) * MINUTE_MS;

/** Phase boundaries of [from, to): `from`, then every grant activity change strictly inside. */
export function phaseStarts(grants: readonly Grant[], from: number, to: number): number[] {
  return to > from ? burnPhaseStarts(grants, from, to - 1) : [from];
}

function metered(e: EntitlementRow): Metered {
  if (!e.def.metered) throw new Error(`entitlement ${e.id} is not metered`);
  return e.def.metered;
}

const startOf = (e: EntitlementRow): PeriodStartState => ({ at: e.segStart, balances: e.startState.balances, overage: e.startState.overage });

/** Rebuilds the segment's counters from the buckets (after its phases or its meter changed). */
export function rebuild(sql: Sql, e: EntitlementRow, grants: readonly Grant[]): void {
  const m = metered(e);
  const starts = phaseStarts(grants, e.segStart, e.segEnd);
  const points = usagePoints(sql, m, starts, e.segEnd);
  if (m.aggregation === "SUM" || m.aggregation === "COUNT") e.phases = points.map((p) => [p.at, p.amount]);
  else e.phases = starts.map((s) => [s, 0]);
  const last = m.aggregation === "LATEST" ? points[0] : undefined;
  e.latestAt = last?.at ?? null;
  e.latest = last?.amount ?? null;
}

/** Opens a segment [from, to) with the given carried-in state, records it, and saves the row. */
export function startSegment(sql: Sql, e: EntitlementRow, grants: readonly Grant[], from: number, to: number, state: Pick<PeriodStartState, "balances" | "overage">, reason: "created" | "period" | "reset", now: number): void {
  e.segStart = from;
  e.segEnd = to;
  e.startState = { balances: state.balances, overage: state.overage };
  e.updatedAt = now;
  rebuild(sql, e, grants);
  // A reset cuts the segment it interrupts short.
  sql.exec("UPDATE entitlement_periods SET end_at = ? WHERE entitlement_id = ? AND start_at < ? AND end_at > ?", from, e.id, from, from);
  sql.exec(
    `INSERT INTO entitlement_periods (entitlement_id, start_at, end_at, state, reason) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (entitlement_id, start_at) DO UPDATE SET end_at = excluded.end_at, state = excluded.state, reason = excluded.reason`,
    e.id,
    from,
    to,
    JSON.stringify(e.startState),
    reason,
  );
  saveState(sql, e);
}

/** The segment's usage from its counters (UNIQUE_COUNT: from the uniques), as points no later than `at`. */
function currentPoints(sql: Sql, e: EntitlementRow, grants: readonly Grant[], at: number): UsagePoint[] {
  const m = metered(e);
  // Events may be stamped up to 5 minutes ahead: their usage counts now, in the phase active at `at`.
  const clamp = (t: number) => Math.max(e.segStart, Math.min(t, at));
  switch (m.aggregation) {
    case "SUM":
    case "COUNT":
      return e.phases.map(([s, u]) => ({ at: clamp(s), amount: u }));
    case "LATEST":
      return e.latestAt === null || e.latest === null ? [] : [{ at: clamp(e.latestAt), amount: e.latest }];
    case "UNIQUE_COUNT":
      return usagePoints(sql, m, phaseStarts(grants, e.segStart, e.segEnd), e.segEnd).map((p) => ({ at: clamp(p.at), amount: p.amount }));
  }
}

/** Rolls over every usage period that ended by `now`, in order. True when anything changed. */
export function ensureCurrent(sql: Sql, e: EntitlementRow, grants: readonly Grant[], now: number): boolean {
  const m = e.def.metered;
  if (!m || e.deletedAt !== null || e.anchor === null || e.def.interval === null) return false;
  let rolled = false;
  while (now >= e.segEnd) {
    const boundary = e.segEnd;
    const before = computeBalance({ grants, start: startOf(e), at: boundary, usage: currentPoints(sql, e, grants, boundary) });
    const next = resetBalances({ grants, before, at: boundary, preserveOverage: m.preserveOverageAtReset });
    startSegment(sql, e, grants, boundary, nextPeriodStart(e.anchor, e.def.interval, boundary), next, "period", now);
    rolled = true;
  }
  return rolled;
}

/** The end of the current minute, inside the segment (also if a clock stepped back across machines). */
const evalAt = (e: EntitlementRow, now: number) => Math.max(e.segStart, Math.min(ceilMinute(now), e.segEnd));

/**
 * The balance now, from the counters. Like OpenMeter, the instant is rounded up to the next minute
 * so that the current minute's usage is in it (and grants are judged at that minute boundary).
 */
export function balanceNow(sql: Sql, e: EntitlementRow, grants: readonly Grant[], now: number): EntitlementBalance {
  ensureCurrent(sql, e, grants, now);
  const at = evalAt(e, now);
  return computeBalance({ grants, start: startOf(e), at, usage: currentPoints(sql, e, grants, at) });
}

/**
 * The balance now if the LATEST value became `value` at `time`: a LATEST feature's usage is replaced,
 * not added to, so a check asks whether the new value would fit in the grants.
 */
export function balanceIfLatest(e: EntitlementRow, grants: readonly Grant[], now: number, value: number, time: number): EntitlementBalance {
  const at = evalAt(e, now);
  return computeBalance({ grants, start: startOf(e), at, usage: [{ at: Math.max(e.segStart, Math.min(time, at)), amount: value }] });
}

/**
 * The balance at a past instant, computed from the buckets and the segment that contained it
 * (null: before measurement began). Late events that arrived after a period was rolled over are
 * included here, though they did not change that period's carry-over.
 */
export function balanceAt(sql: Sql, e: EntitlementRow, grants: readonly Grant[], time: number): EntitlementBalance | null {
  const m = metered(e);
  const seg = sql.one<{ start_at: number; end_at: number; state: string }>(
    "SELECT start_at, end_at, state FROM entitlement_periods WHERE entitlement_id = ? AND start_at <= ? ORDER BY start_at DESC LIMIT 1",
    e.id,
    time,
  );
  if (!seg) return null;
  const state = JSON.parse(seg.state) as Pick<PeriodStartState, "balances" | "overage">;
  const at = Math.min(ceilMinute(time), seg.end_at);
  const usage = usagePoints(sql, m, phaseStarts(grants, seg.start_at, at), at).map((p) => ({ at: Math.min(p.at, at), amount: p.amount }));
  return computeBalance({ grants, start: { at: seg.start_at, ...state }, at, usage });
}

export function toValue(e: EntitlementRow, b: EntitlementBalance | null): EntitlementValue {
  const m = metered(e);
  if (!b) return { hasAccess: false, balance: 0, usage: 0, overage: 0, totalAvailableGrantAmount: 0 };
  return { hasAccess: meteredHasAccess(b.balance, m.isSoftLimit), balance: b.balance, usage: b.usage, overage: b.overage, totalAvailableGrantAmount: b.totalAvailableGrantAmount };
}

export interface ResetRequest {
  at: number | null;
  retainAnchor: boolean;
  preserveOverage: boolean | null;
}

/** OpenMeter's reset: a new segment from `at` (minute-truncated, not in the future, not before the last reset). */
export function resetSegment(sql: Sql, e: EntitlementRow, grants: readonly Grant[], req: ResetRequest, now: number): Result<null> {
  const m = e.def.metered;
  if (!m || e.anchor === null || e.def.interval === null) return fail("validation_failed", "only metered entitlements have usage to reset");
  ensureCurrent(sql, e, grants, now);
  const at = truncMinute(req.at ?? now);
  if (at > now) return fail("validation_failed", `effectiveAt ${iso(at)} is in the future; a reset takes effect now or in the past`, "effectiveAt");
  if (at < e.segStart) {
    return fail("validation_failed", `effectiveAt ${iso(at)} is before the current usage period, which started at ${iso(e.segStart)} (lastReset)`, "effectiveAt");
  }
  const before = computeBalance({ grants, start: startOf(e), at, usage: usagePoints(sql, m, phaseStarts(grants, e.segStart, at), at) });
  const next = resetBalances({ grants, before, at, preserveOverage: req.preserveOverage ?? m.preserveOverageAtReset });
  if (!req.retainAnchor) e.anchor = at;
  startSegment(sql, e, grants, at, nextPeriodStart(e.anchor, e.def.interval, at), next, "reset", now);
  return ok(null);
}
