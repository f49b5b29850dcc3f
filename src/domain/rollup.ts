import { addAggregates, type Bucket, type Running } from "./aggregate";
import { nextWindowStart, windowStart, type WindowSize } from "./windows";

/**
 * D1 snapshot rows cover 15 minutes, not an hour: every UTC offset in use since 1972 is a whole
 * number of quarter hours (Asia/Kolkata +5:30, Asia/Kathmandu +5:45, Pacific/Chatham +12:45) and
 * DST changes happen on quarter hours, so HOUR, DAY and MONTH windows in every current zone start
 * and end on a 15-minute boundary and fold exactly from these rows. Hourly rows would have to
 * refuse those zones; minute rows would write up to 15× more D1 rows for continuous traffic.
 */
export const GRANULE_MS = 15 * 60_000;

/** Start of the snapshot row (UTC quarter hour) containing `ms`. */
export function granuleOf(ms: number): number {
  return Math.floor(ms / GRANULE_MS) * GRANULE_MS + 0;
}

/**
 * D1 also keeps the rows folded per UTC day (usage_snapshot_days): reports read those for the whole
 * UTC days inside a window, 96 times fewer rows, and the 15-minute rows for the rest.
 */
export const DAY_MS = 86_400_000;

/** Start of the UTC day containing `ms`. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS + 0;
}

/**
 * A window [from, to) on 15-minute boundaries, cut into the parts read from day rows and from 15-minute
 * rows. Days before `daysFrom` are read from 15-minute rows: the retention cron deletes a day's
 * 15-minute rows over several statements (and runs) before its day row, so only they say what is left.
 */
export function splitByDays(from: number, to: number, daysFrom = -Infinity): { days: [number, number][]; granules: [number, number][] } {
  const first = Math.max(Math.ceil(from / DAY_MS) * DAY_MS, Math.ceil(daysFrom / DAY_MS) * DAY_MS) + 0;
  const last = dayOf(to);
  if (first >= last) return { days: [], granules: from < to ? [[from, to]] : [] };
  const granules: [number, number][] = [];
  if (from < first) granules.push([from, first]);
  if (last < to) granules.push([last, to]);
  return { days: [[first, last]], granules };
}

/** A stored minute bucket of some meter, as the Durable Object reads it. */
export interface MinuteBucket extends Bucket {
  meter_id: string;
}

/** One snapshot row: a meter's 15 minutes for one combination of group-by values, absolute values. */
export interface GranuleRow extends Running {
  meterId: string;
  windowStart: number;
  groupKey: string;
}

/**
 * Folds minute buckets into snapshot rows with the same rules foldBuckets applies to windows:
 * sums add, extremes keep, LATEST keeps the latest event time (ties to the later bucket). Within
 * one row and group a minute's latest_at lies inside that minute, so ties cannot occur there.
 */
export function foldGranules(buckets: Iterable<MinuteBucket>): GranuleRow[] {
  const rows = new Map<string, GranuleRow>();
  for (const b of buckets) {
    const windowStart = granuleOf(b.minute);
    const key = `${b.meter_id}\u0000${windowStart}\u0000${b.group_key}`;
    let r = rows.get(key);
    if (!r) {
      r = { meterId: b.meter_id, windowStart, groupKey: b.group_key, sum: 0, count: 0, min: null, max: null, latestAt: -Infinity, latest: null };
      rows.set(key, r);
    }
    addAggregates(r, b);
  }
  return [...rows.values()];
}

/** One answer window and the part of it the query range covers, both on snapshot-row boundaries. */
export interface PlannedWindow {
  /** The window as reported (may start before `from` or end after `to`, as per-subject answers do). */
  start: number;
  end: number;
  /** The rows it folds: window_start in [from, to). */
  from: number;
  to: number;
}

export type WindowPlan = { ok: true; windows: PlannedWindow[] } | { ok: false; reason: string };

/** More windows than any sensible report (HOUR windows over 11 years); the range must be narrowed. */
export const MAX_PLANNED_WINDOWS = 100_000;

/**
 * The windows a namespace-wide query folds snapshot rows into. `from`/`to` must already be on
 * row boundaries; `extent` is the first and last row start that hold data in that range (windows
 * outside it would be empty). Refuses when a window boundary inside the data falls between row
 * boundaries, which only a pre-1972 offset (e.g. Africa/Monrovia's −0:44:30) can cause.
 */
export function planWindows(opts: {
  from: number | null;
  to: number;
  windowSize: WindowSize | null;
  timeZone: string;
  extent: { first: number; last: number } | null;
}): WindowPlan {
  const { to, windowSize, timeZone, extent } = opts;
  if (!extent) return { ok: true, windows: [] };
  const from = opts.from ?? extent.first;
  if (from % GRANULE_MS !== 0 || to % GRANULE_MS !== 0) throw new RangeError("planWindows: from and to must be on snapshot-row boundaries");
  if (!windowSize) return { ok: true, windows: [{ start: from, end: to, from, to }] };
  if (windowSize === "MINUTE") return { ok: false, reason: "MINUTE windows are finer than the 15-minute snapshot rows" };
  const lo = Math.max(from, extent.first);
  const hi = Math.min(to, extent.last + GRANULE_MS);
  const windows: PlannedWindow[] = [];
  for (let start = windowStart(lo, windowSize, timeZone); start < hi; ) {
    const end = nextWindowStart(start, windowSize, timeZone);
    for (const edge of [start, end]) {
      if (edge > lo && edge < hi && edge % GRANULE_MS !== 0) {
        return {
          ok: false,
          reason: `the ${windowSize} window boundary at ${new Date(edge).toISOString()} in ${timeZone} does not fall on a 15-minute boundary`,
        };
      }
    }
    windows.push({ start, end, from: Math.max(start, from), to: Math.min(end, to) });
    if (windows.length > MAX_PLANNED_WINDOWS) return { ok: false, reason: `more than ${MAX_PLANNED_WINDOWS} ${windowSize} windows; narrow from/to` };
    start = end;
  }
  return { ok: true, windows };
}

/**
 * How long after its last flush a subject with known unflushed changes counts as overdue (for the
 * cron's nudge and the reports' `overdueSubjects`): two intervals plus a minute, so a flush that is
 * merely slow, or retrying after one D1 error, is not yet called late.
 */
export function overdueAfterMs(intervalSeconds: number): number {
  return 2 * intervalSeconds * 1000 + 60_000;
}
