/**
 * Usage periods of metered entitlements (OpenMeter's `usagePeriod`: a RecurringPeriod of
 * `{ interval, anchor }`).
 *
 * Semantics, following OpenMeter's `timeutil.Recurrence`:
 * - The k-th boundary is always computed from the anchor as `anchor + k × interval`, for any
 *   integer k (negative k goes backwards), never by stepping from the previous boundary. So a
 *   month anchor on Jan 31 gives Feb 28 (29 in leap years), Mar 31, Apr 30, … and never drifts
 *   to the 28th.
 * - Month and year arithmetic clamps to the last day of the target month (Go's `AddDate`
 *   would overflow Jan 31 + 1 month into March; OpenMeter's ISO-duration arithmetic clamps,
 *   and so do we). A yearly Feb 29 anchor gives Feb 28 in common years and Feb 29 in leap years.
 * - All arithmetic is in UTC; the anchor's time of day is kept on every boundary.
 * - Periods are half-open: `from <= at < to` (OpenMeter's ClosedPeriod.Contains is inclusive at
 *   the start and exclusive at the end), so an instant on a boundary belongs to the period it starts.
 *
 * OpenMeter finds the period by iterating one interval at a time (capped at 10,000 steps); here
 * k is estimated arithmetically and then corrected by at most a step or two, so an anchor decades
 * away costs the same as one a day away.
 *
 * A reset with `retainAnchor: false` simply makes the reset time the new anchor: call these
 * functions with that anchor.
 */

export type PeriodInterval = "DAY" | "WEEK" | "MONTH" | "YEAR";

export const PERIOD_INTERVALS: readonly PeriodInterval[] = ["DAY", "WEEK", "MONTH", "YEAR"];

export interface Period {
  /** Inclusive start, epoch ms. */
  from: number;
  /** Exclusive end, epoch ms. */
  to: number;
}

const DAY_MS = 86_400_000;

/** OpenMeter's `intervalISO` rendering of the enum (RecurringPeriod.intervalISO). */
export function intervalToISO(interval: PeriodInterval): string {
  switch (interval) {
    case "DAY":
      return "P1D";
    case "WEEK":
      return "P1W";
    case "MONTH":
      return "P1M";
    case "YEAR":
      return "P1Y";
  }
}

function fixedLengthMs(interval: PeriodInterval): number | null {
  if (interval === "DAY") return DAY_MS;
  if (interval === "WEEK") return 7 * DAY_MS;
  return null;
}

function monthsPer(interval: PeriodInterval): number {
  return interval === "YEAR" ? 12 : 1;
}

function daysInMonth(year: number, month0: number): number {
  // Day 0 of the next month is the last day of this one.
  const d = new Date(0);
  d.setUTCFullYear(year, month0 + 1, 0);
  return d.getUTCDate();
}

/** Date.UTC without its 0–99 → 1900s quirk. */
function utc(year: number, month0: number, day: number, msOfDay: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month0, day);
  return d.getTime() + msOfDay;
}

function assertTime(name: string, ms: number): void {
  if (!Number.isFinite(ms)) throw new RangeError(`${name} must be a finite epoch-millisecond value, got ${ms}`);
}

/**
 * The k-th period boundary: `anchor + k × interval` (k may be negative), month-end clamped.
 * `addPeriods(anchor, i, 0) === anchor`.
 */
export function addPeriods(anchorMs: number, interval: PeriodInterval, k: number): number {
  assertTime("anchor", anchorMs);
  if (!Number.isInteger(k)) throw new RangeError(`k must be an integer, got ${k}`);
  const fixed = fixedLengthMs(interval);
  if (fixed !== null) return anchorMs + k * fixed;

  const a = new Date(anchorMs);
  const msOfDay = anchorMs - utc(a.getUTCFullYear(), a.getUTCMonth(), a.getUTCDate(), 0);
  const monthIndex = a.getUTCFullYear() * 12 + a.getUTCMonth() + k * monthsPer(interval);
  const year = Math.floor(monthIndex / 12);
  const month0 = monthIndex - year * 12;
  const day = Math.min(a.getUTCDate(), daysInMonth(year, month0));
  return utc(year, month0, day, msOfDay);
}

/** Index k of the period containing `at`: addPeriods(anchor, k) <= at < addPeriods(anchor, k + 1). */
function periodIndex(anchorMs: number, interval: PeriodInterval, atMs: number): number {
  const fixed = fixedLengthMs(interval);
  if (fixed !== null) return Math.floor((atMs - anchorMs) / fixed);

  // Estimate from calendar months, then correct: the estimate is off by at most one period
  // (day-of-month / time-of-day of `at` vs. the anchor), the loops below run at most twice.
  const a = new Date(anchorMs);
  const t = new Date(atMs);
  const monthDiff = (t.getUTCFullYear() - a.getUTCFullYear()) * 12 + (t.getUTCMonth() - a.getUTCMonth());
  let k = Math.floor(monthDiff / monthsPer(interval));
  while (addPeriods(anchorMs, interval, k) > atMs) k--;
  while (addPeriods(anchorMs, interval, k + 1) <= atMs) k++;
  return k;
}

/**
 * The usage period that contains `at`, for periods recurring from `anchor` (which may lie before
 * or after `at`). Always `from <= at < to`.
 */
export function periodContaining(anchorMs: number, interval: PeriodInterval, atMs: number): Period {
  assertTime("anchor", anchorMs);
  assertTime("at", atMs);
  const k = periodIndex(anchorMs, interval, atMs);
  return { from: addPeriods(anchorMs, interval, k), to: addPeriods(anchorMs, interval, k + 1) };
}

/** Start of the next period strictly after `at` (the next automatic reset time). */
export function nextPeriodStart(anchorMs: number, interval: PeriodInterval, atMs: number): number {
  return periodContaining(anchorMs, interval, atMs).to;
}

/**
 * Period starts (automatic resets) in the half-open window (afterMs, untilMs], oldest first:
 * the resets an entitlement must apply, in order, when it is next touched after being idle
 * (each reset rolls grants over, so skipping one can change the result). At most `limit` are
 * returned; a full result means there may be more after the last one.
 */
export function periodStartsBetween(
  anchorMs: number,
  interval: PeriodInterval,
  afterMs: number,
  untilMs: number,
  limit = 1000,
): number[] {
  assertTime("after", afterMs);
  assertTime("until", untilMs);
  const out: number[] = [];
  if (untilMs <= afterMs) return out;
  let k = periodIndex(anchorMs, interval, afterMs) + 1;
  for (let t = addPeriods(anchorMs, interval, k); t <= untilMs && out.length < limit; t = addPeriods(anchorMs, interval, ++k)) {
    out.push(t);
  }
  return out;
}
