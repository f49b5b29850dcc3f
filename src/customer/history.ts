import { truncMinute } from "../domain/entitlement";
import { computeBalance, type EntitlementBalance, type Grant, type PeriodStartState } from "../domain/grants";
import { iso } from "../domain/time";
import { nextWindowStart, windowStart, type WindowSize } from "../domain/windows";
import { fail, ok, type EntitlementRow, type Result } from "./entitlements";
import { ceilMinute, phaseStarts } from "./segments";
import type { Sql } from "./sql";
import { latest, usagePoints, type Metered } from "./usage";

/**
 * OpenMeter's entitlement history (GET …/entitlements/{entitlementId}/history), computed from the
 * stored minute buckets and the entitlement's recorded periods (entitlement_periods), like a value at
 * a past `time`:
 * - windowedHistory: usage per window (windowSize in windowTimeZone; the first and last windows are
 *   cut to [from, to)) with the balance at the window's start; only windows with usage.
 * - burndownHistory: segments of [from, to) between the instants that change the burn-down — a usage
 *   period starting, a reset, a grant becoming active, expiring or voided — with the balances of each
 *   grant at both ends and what each grant covered in between.
 * Usage within a period is measured from that period's start, as the balance is: UNIQUE_COUNT counts
 * a value in the window where the period first saw it; LATEST reports the latest value in the window.
 */

export const MAX_HISTORY_WINDOWS = 1000;

export interface HistoryQuery {
  from: number | null;
  to: number | null;
  windowSize: WindowSize;
  timeZone: string;
}

export interface Span {
  from: number;
  to: number;
}

export interface HistoryWindow {
  period: Span;
  usage: number;
  balanceAtStart: number;
}

export interface BurndownSegment {
  period: Span;
  usage: number;
  overage: number;
  balanceAtStart: number;
  grantBalancesAtStart: Record<string, number>;
  balanceAtEnd: number;
  grantBalancesAtEnd: Record<string, number>;
  grantUsages: { grantId: string; usage: number }[];
}

export interface BalanceHistory {
  windowedHistory: HistoryWindow[];
  burndownHistory: BurndownSegment[];
}

interface Period extends Span {
  state: Pick<PeriodStartState, "balances" | "overage">;
}

/** `e` must be current (ensureCurrent): its last recorded period is the one running now. */
export function balanceHistory(sql: Sql, e: EntitlementRow, m: Metered, grants: readonly Grant[], q: HistoryQuery, now: number): Result<BalanceHistory> {
  if (q.from !== null && q.to !== null && q.to <= q.from) return fail("validation_failed", `to (${iso(q.to)}) must be after from (${iso(q.from)})`, "to");
  if (q.from !== null && q.from > now) return fail("validation_failed", `from (${iso(q.from)}) is in the future`, "from");
  const periods = sql
    .all<{ start_at: number; end_at: number; state: string }>("SELECT start_at, end_at, state FROM entitlement_periods WHERE entitlement_id = ? ORDER BY start_at", e.id)
    .map((p): Period => ({ from: p.start_at, to: p.end_at, state: JSON.parse(p.state) }));
  const measuredUntil = Math.min(ceilMinute(now), e.segEnd);
  // Nothing was measured before the first period (measureUsageFrom) or after now.
  const from = Math.max(truncMinute(q.from ?? e.segStart), periods[0]?.from ?? e.segStart);
  const to = Math.min(q.to === null ? measuredUntil : truncMinute(q.to), measuredUntil);
  if (periods.length === 0 || to <= from) return ok({ windowedHistory: [], burndownHistory: [] });

  const windows: Span[] = [];
  for (let s = windowStart(from, q.windowSize, q.timeZone); s < to; ) {
    const next = nextWindowStart(s, q.windowSize, q.timeZone);
    if (windows.length === MAX_HISTORY_WINDOWS) {
      return fail("validation_failed", `from ${iso(from)} to ${iso(to)} spans more than ${MAX_HISTORY_WINDOWS} windows of a ${q.windowSize}: narrow the range or use a larger windowSize`, "windowSize");
    }
    windows.push({ from: Math.max(s, from), to: Math.min(next, to) });
    s = next;
  }

  const periodAt = (t: number): Period => periods.findLast((p) => p.from <= t) ?? periods[0]!;
  // The balance at `at` within period `p`, from the buckets (what balanceAt does for a past time).
  const balance = (p: Period, at: number): EntitlementBalance => {
    const usage = usagePoints(sql, m, phaseStarts(grants, p.from, at), at).map((u) => ({ at: Math.min(u.at, at), amount: u.amount }));
    return computeBalance({ grants, start: { at: p.from, ...p.state }, at, usage });
  };

  const windowedHistory: HistoryWindow[] = [];
  for (const w of windows) {
    const usage = windowUsage(sql, m, periods, w);
    if (usage !== 0) windowedHistory.push({ period: w, usage, balanceAtStart: balance(periodAt(w.from), w.from).balance });
  }

  // Burn-down segments: cut at every period start and every change of the grants' burn order.
  const cuts = new Set<number>([from, to, ...phaseStarts(grants, from, to)]);
  for (const p of periods) if (p.from > from && p.from < to) cuts.add(p.from);
  const sorted = [...cuts].sort((a, b) => a - b);
  const burndownHistory: BurndownSegment[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const a = sorted[i]!;
    const b = sorted[i + 1]!;
    const p = periodAt(a);
    const start = balance(p, a);
    // Just before the next cut: a grant expiring there still counts, one becoming active does not.
    const end = balance(p, b - 1);
    const grantUsages = Object.keys(start.grantBalances)
      .map((grantId) => ({ grantId, usage: start.grantBalances[grantId]! - (end.grantBalances[grantId] ?? 0) }))
      .filter((g) => g.usage > 0);
    burndownHistory.push({
      period: { from: a, to: b },
      usage: end.usage - start.usage,
      overage: Math.max(0, end.overage - start.overage),
      balanceAtStart: start.balance,
      grantBalancesAtStart: start.grantBalances,
      balanceAtEnd: end.balance,
      grantBalancesAtEnd: end.grantBalances,
      grantUsages,
    });
  }
  return ok({ windowedHistory, burndownHistory });
}

/** The feature's usage in window `w`, each part measured within its usage period. */
function windowUsage(sql: Sql, m: Metered, periods: readonly Period[], w: Span): number {
  if (m.aggregation === "LATEST") return latest(sql, m, w.from, w.to)?.value ?? 0;
  let total = 0;
  for (const p of periods) {
    const from = Math.max(p.from, w.from);
    const to = Math.min(p.to, w.to);
    if (to <= from) continue;
    if (m.aggregation === "UNIQUE_COUNT") {
      // Values first seen in the period inside this part of the window.
      for (const u of usagePoints(sql, m, [p.from], to)) if (u.at >= from) total += u.amount;
    } else {
      total += usagePoints(sql, m, [from], to)[0]?.amount ?? 0;
    }
  }
  return total;
}
