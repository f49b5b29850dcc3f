import { truncMinute } from "../domain/entitlement";
import { computeBalance, isGrantActiveAt, type EntitlementBalance, type Grant, type PeriodStartState, type UsagePoint } from "../domain/grants";
import { iso } from "../domain/time";
import { nextWindowStart, windowStart, type WindowSize } from "../domain/windows";
import { fail, ok, type EntitlementRow, type Result } from "./entitlements";
import { ceilMinute, phaseStarts } from "./segments";
import type { Sql } from "./sql";
import { distinctValues, latest, usagePoints, type Metered } from "./usage";

/**
 * OpenMeter's entitlement history (GET …/entitlements/{entitlementId}/history), computed from the
 * stored minute buckets and the entitlement's recorded periods (entitlement_periods), like a value at
 * a past `time`:
 * - windowedHistory: usage per window (windowSize in windowTimeZone; the first and last windows are
 *   cut to [from, to)) with the balance at the window's start; only windows with usage.
 * - burndownHistory: segments of [from, to) between the instants that change the burn-down — a usage
 *   period starting, a reset, a grant becoming active, expiring or voided — with the balance of each
 *   grant active at either end and what each grant covered in between.
 * A window's usage is what a meter query of that window answers (UNIQUE_COUNT: its distinct values;
 * LATEST: its latest value); the balances burn usage down as the entitlement's value does. At most
 * MAX_HISTORY_WINDOWS windows and as many segments per request.
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
    if (windows.length === MAX_HISTORY_WINDOWS) return tooMany(`windows of a ${q.windowSize}`, "use a larger windowSize", "windowSize");
    windows.push({ from: Math.max(s, from), to: Math.min(next, to) });
    s = next;
  }
  // Burn-down segments: cut at every period start and every change of the grants' burn order.
  const cutSet = new Set<number>([from, to, ...phaseStarts(grants, from, to)]);
  for (const p of periods) if (p.from > from && p.from < to) cutSet.add(p.from);
  const cuts = [...cutSet].sort((a, b) => a - b);
  if (cuts.length - 1 > MAX_HISTORY_WINDOWS) return tooMany("burn-down segments (usage periods, resets and grant changes)", "narrow the range", "from");

  const usage = new UsageReader(sql, m, grants, periods, [...cuts, ...windows.map((w) => w.from)], to);
  const windowedHistory: HistoryWindow[] = [];
  for (const w of windows) {
    const used = usage.inWindow(w);
    if (used !== 0) windowedHistory.push({ period: w, usage: used, balanceAtStart: usage.balance(w.from).balance });
  }
  const burndownHistory: BurndownSegment[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const a = cuts[i]!;
    const b = cuts[i + 1]!;
    const start = usage.balance(a);
    // Just before the next cut, in the same period: a grant expiring there still counts, one becoming active does not.
    const end = usage.balance(b - 1, a);
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

const tooMany = (what: string, hint: string, field: string): Result<never> =>
  fail("validation_failed", `the range spans more than ${MAX_HISTORY_WINDOWS} ${what}: ${hint}`, field);

/**
 * The feature's usage over the history's periods, read once and cut into pieces at every instant the
 * history reports (and at phase starts): a piece [s_i, s_{i+1}) holds SUM/COUNT's amount, or the
 * number of values UNIQUE_COUNT's period first saw in it, or LATEST's latest value up to its end.
 * Every balance is asked at a piece boundary (a cut is a whole minute, and a segment's end `b - 1`
 * takes the piece ending at `b`), so it adds up the pieces before it in memory instead of reading
 * the buckets from the period's start again; memory grows with the pieces, not with the buckets.
 */
class UsageReader {
  private readonly pieces = new Map<Period, UsagePoint[]>();
  /** LATEST: per period, after each piece, the latest value so far (null: none yet). */
  private readonly latestAfter = new Map<Period, ({ at: number; value: number } | null)[]>();

  constructor(
    private readonly sql: Sql,
    private readonly m: Metered,
    private readonly grants: readonly Grant[],
    private readonly periods: readonly Period[],
    instants: readonly number[],
    to: number,
  ) {
    for (const p of periods) {
      const end = Math.min(p.to, to);
      if (end <= p.from || p.to <= instants[0]!) continue;
      const set = new Set([p.from, ...phaseStarts(grants, p.from, end)]);
      for (const t of instants) if (t > p.from && t < end) set.add(t);
      const starts = [...set].sort((x, y) => x - y);
      const next = (i: number) => starts[i + 1] ?? end;
      if (m.aggregation === "LATEST") {
        let best: { at: number; value: number } | null = null;
        this.latestAfter.set(
          p,
          starts.map((s, i) => {
            const l = latest(sql, m, s, next(i));
            if (l && (best === null || l.at >= best.at)) best = l;
            return best;
          }),
        );
        this.pieces.set(p, starts.map((s) => ({ at: s, amount: 0 })));
      } else if (m.aggregation === "UNIQUE_COUNT") {
        const counts = starts.map((s) => ({ at: s, amount: 0 }));
        let i = 0;
        for (const first of usagePoints(sql, m, [p.from], end)) {
          while (first.at >= next(i)) i++;
          counts[i]!.amount += first.amount;
        }
        this.pieces.set(p, counts);
      } else {
        this.pieces.set(p, usagePoints(sql, m, starts, end));
      }
    }
  }

  private periodAt(t: number): Period {
    return this.periods.findLast((p) => p.from <= t) ?? this.periods[0]!;
  }

  /** The balance at `at`, counted from the start of the period `within` (default: the one containing `at`) lies in. */
  balance(at: number, within = at): EntitlementBalance {
    const p = this.periodAt(within);
    const before = (this.pieces.get(p) ?? []).filter((u) => u.at < at);
    let usage = before;
    if (this.m.aggregation === "LATEST") {
      const best = before.length > 0 ? this.latestAfter.get(p)![before.length - 1]! : null;
      usage = best ? [{ at: Math.min(best.at, at), amount: best.value }] : [];
    }
    const b = computeBalance({ grants: this.grants, start: { at: p.from, ...p.state }, at, usage });
    // Only the grants active at that instant (OpenMeter: "each active grant").
    const active = new Set(this.grants.filter((g) => isGrantActiveAt(g, at)).map((g) => g.id));
    return { ...b, grantBalances: Object.fromEntries(Object.entries(b.grantBalances).filter(([id]) => active.has(id))) };
  }

  /** Usage in window `w`: SUM/COUNT from the pieces; UNIQUE_COUNT and LATEST as a meter query of the window counts it. */
  inWindow(w: Span): number {
    if (this.m.aggregation === "LATEST") return latest(this.sql, this.m, w.from, w.to)?.value ?? 0;
    if (this.m.aggregation === "UNIQUE_COUNT") return distinctValues(this.sql, this.m, w.from, w.to);
    let total = 0;
    for (const pieces of this.pieces.values()) for (const u of pieces) if (u.at >= w.from && u.at < w.to) total += u.amount;
    return total;
  }
}
