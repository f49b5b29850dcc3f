/**
 * Query windows (OpenMeter `windowSize` + `windowTimeZone`) over usage stored in 1-minute UTC
 * buckets.
 *
 * A window is the maximal run of instants sharing the same local label:
 *   MINUTE  the UTC minute. Every zone offset in use since the early 1970s is a whole number of
 *           minutes, so a local minute always starts on a UTC minute.
 *   DAY     the local calendar date. A DST day is 23 or 25 hours (23.5/24.5 on Lord Howe).
 *   MONTH   the local calendar month.
 *   HOUR    the local hour *and* the UTC offset in force. On a fall-back night New York's
 *           repeated 01:00 hour is two one-hour windows, not one two-hour window, so every
 *           HOUR window is at most an hour; when a 30-minute shift lands mid-hour (Lord Howe),
 *           the window is cut at the transition and lasts 30 minutes.
 * When local midnight falls in a DST gap, the day starts at the transition (the first instant of
 * that date); when it occurs twice, at the earlier one, as Temporal's startOfDay does.
 *
 * Offsets come from Intl.DateTimeFormat, the only tz database inside workerd. A formatter is
 * costly to build and format() costs ~2 µs, so there is one formatter per zone (bounded cache),
 * and the last window per zone and size is remembered: a fold walks buckets in time order, so
 * nearly every call is one comparison; a call out of order costs one format() when the window's
 * local label was seen before. As in Temporal's algorithm, resolving a local midnight assumes at
 * most one offset change within a day either side of it. Supported range: years 0 to 9999,
 * proleptic Gregorian calendar.
 */

export const WINDOW_SIZES = ["MINUTE", "HOUR", "DAY", "MONTH"] as const;
export type WindowSize = (typeof WINDOW_SIZES)[number];

const SECOND_MS = 1_000;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const FOUR_CENTURIES_MS = 146_097 * DAY_MS;

/** Zones that are UTC by definition; they skip Intl entirely. */
const UTC_NAMES: ReadonlySet<string> = new Set(["UTC", "Etc/UTC", "GMT", "Etc/GMT"]);

type Window = { readonly start: number; readonly end: number };

type Zone = {
  /** null for UTC. */
  readonly fmt: Intl.DateTimeFormat | null;
  /** Last window per size as [start, end) pairs: HOUR at 0-1, DAY at 2-3, MONTH at 4-5. */
  readonly memo: Float64Array;
  /** Windows by local label (key built in remember), per size: HOUR, DAY, MONTH. */
  readonly byLabel: readonly [Map<number, Window>, Map<number, Window>, Map<number, Window>];
};

// Bounded because the zone name comes from a query parameter: at worst 64 zones x 3 sizes x
// 512 windows, well under 10 MB of the isolate's 128 MB.
const ZONE_CACHE_LIMIT = 64;
const LABEL_CACHE_LIMIT = 512;
const zones = new Map<string, Zone>();
const invalidZones = new Set<string>();
let lastName = "";
let lastZone: Zone | null = null;

export function isValidTimeZone(tz: string): boolean {
  return lookupZone(tz) !== null;
}

/** Floors to the UTC minute, the storage bucket. */
export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS + 0; // + 0 turns -0 into 0
}

/** Start (epoch ms) of the window containing `ms`. Throws RangeError for an invalid zone. */
export function windowStart(ms: number, size: WindowSize, tz: string): number {
  checkInstant(ms);
  const k = slot(size);
  if (k < 0) return minuteOf(ms);
  const z = zoneOrThrow(tz);
  if (z.fmt === null && size !== "MONTH") return floorTo(ms, size === "HOUR" ? HOUR_MS : DAY_MS);
  const memo = z.memo;
  if (!(ms >= memo[k]! && ms < memo[k + 1]!)) remember(ms, size, k, z);
  return memo[k]!;
}

/** Start of the window after the one containing `start` (so also its exclusive end). */
export function nextWindowStart(start: number, size: WindowSize, tz: string): number {
  checkInstant(start);
  const k = slot(size);
  if (k < 0) return minuteOf(start) + MINUTE_MS;
  const z = zoneOrThrow(tz);
  if (z.fmt === null && size !== "MONTH") {
    const unit = size === "HOUR" ? HOUR_MS : DAY_MS;
    return floorTo(start, unit) + unit;
  }
  const memo = z.memo;
  if (!(start >= memo[k]! && start < memo[k + 1]!)) remember(start, size, k, z);
  return memo[k + 1]!;
}

/** Puts the window containing `ms` into the memo: one formatter call if its label is cached. */
function remember(ms: number, size: WindowSize, k: number, z: Zone): void {
  const wall = wallMs(ms, z);
  const off = wall - ms;
  // Instants with the same local date share DAY and MONTH windows; HOUR also needs the offset.
  const key =
    size === "HOUR"
      ? Math.floor(wall / HOUR_MS) * 131_072 + Math.round(off / SECOND_MS) + 65_536
      : Math.floor(wall / DAY_MS);
  const cache = z.byLabel[k >> 1]!;
  let w = cache.get(key);
  if (w === undefined) {
    w = computeWindow(ms, wall, off, size, z);
    if (cache.size >= LABEL_CACHE_LIMIT) cache.clear();
    cache.set(key, w);
  }
  // A local date can come back after the next one began (St John's fell back 00:01 -> 23:01 until
  // 2011): the next day starts at the first midnight, so the repeated minutes belong to it.
  if (ms >= w.end) w = computeWindow(w.end, wallMs(w.end, z), offsetAt(w.end, z), size, z);
  z.memo[k] = w.start;
  z.memo[k + 1] = w.end;
}

function computeWindow(ms: number, wall: number, off: number, size: WindowSize, z: Zone): Window {
  if (size === "HOUR") {
    const local = floorTo(wall, HOUR_MS);
    let start = local - off;
    // An offset change since the local hour began (or before it ends) cuts the window there.
    if (offsetAt(start, z) !== off) start = findTransition(start, ms, off, z);
    let end = local + HOUR_MS - off;
    const offAtEnd = offsetAt(end - 1, z);
    if (offAtEnd !== off) end = findTransition(ms, end - 1, offAtEnd, z);
    return { start, end };
  }
  if (size === "DAY") {
    const day = floorTo(wall, DAY_MS);
    return { start: resolveLocal(day, z), end: resolveLocal(day + DAY_MS, z) };
  }
  return { start: resolveLocal(firstOfMonth(wall, 0), z), end: resolveLocal(firstOfMonth(wall, 1), z) };
}

/**
 * The first instant whose local wall-clock time is `local` (wall-clock ms as if UTC), or, if
 * that time is skipped by a DST gap, the transition that skips it.
 */
function resolveLocal(local: number, z: Zone): number {
  if (z.fmt === null) return local;
  // Instants a day either side are safely before and after any transition near `local`.
  const offBefore = offsetAt(local - DAY_MS, z);
  const offAfter = offsetAt(local + DAY_MS, z);
  const early = local - offBefore;
  if (offBefore === offAfter) return early;
  const late = local - offAfter;
  const earlyValid = offsetAt(early, z) === offBefore;
  const lateValid = offsetAt(late, z) === offAfter;
  if (earlyValid && lateValid) return Math.min(early, late); // repeated: take the first
  if (earlyValid) return early;
  if (lateValid) return late;
  // In a gap offAfter > offBefore, so late < early, and the transition lies in (late, early].
  return findTransition(late, early, offAfter, z);
}

/**
 * The earliest instant in (lo, hi] whose offset is `target`, given that lo's offset is not
 * and hi's is. tzdb transitions fall on whole seconds, so a binary search over seconds is exact
 * (about 12 formatter calls for an hour-long span; only reached near transitions).
 */
function findTransition(lo: number, hi: number, target: number, z: Zone): number {
  let a = Math.floor(lo / SECOND_MS);
  let b = Math.floor(hi / SECOND_MS);
  while (b - a > 1) {
    const mid = Math.floor((a + b) / 2);
    if (offsetAt(mid * SECOND_MS, z) === target) b = mid;
    else a = mid;
  }
  return b * SECOND_MS;
}

function offsetAt(ms: number, z: Zone): number {
  return wallMs(ms, z) - ms;
}

/** Local wall-clock time at `ms`, expressed as epoch ms of the same reading in UTC. */
function wallMs(ms: number, z: Zone): number {
  const fmt = z.fmt;
  if (fmt === null) return ms;
  const sub = ((ms % SECOND_MS) + SECOND_MS) % SECOND_MS;
  // format() plus a digit scan is several times cheaper than formatToParts' array of objects.
  // The locale pins Latin digits and the Gregorian calendar: "M/D/YYYY, HH:MM:SS".
  const text = fmt.format(ms - sub);
  const f = fields;
  let count = 0;
  let n = 0;
  let inNumber = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c >= 0 && c <= 9) {
      n = n * 10 + c;
      inNumber = true;
    } else if (inNumber) {
      if (count < 6) f[count] = n;
      count++;
      n = 0;
      inNumber = false;
    }
  }
  if (inNumber) f[count++] = n;
  if (count !== 6) throw new RangeError(`cannot read local time from ${JSON.stringify(text)}`);
  // Some ICU versions print midnight as hour 24 of the same date.
  const wall = utc(f[2]!, f[0]! - 1, f[1]!, f[3]! % 24, f[4]!, f[5]!) + sub;
  // Years before 1 are printed as era years (year 0 is "1", i.e. 1 BC), which reads a year or more
  // late; any real offset is within a day or so.
  return wall - ms > 2 * DAY_MS ? utc(1 - f[2]!, f[0]! - 1, f[1]!, f[3]! % 24, f[4]!, f[5]!) + sub : wall;
}

// Scratch space for wallMs; the module is single-threaded and wallMs does not re-enter.
const fields = new Int32Array(6);

/** Date.UTC without its two-digit-year quirk (years 0-99 would mean 1900-1999). */
function utc(year: number, month0: number, day: number, h: number, m: number, s: number): number {
  return Date.UTC(year + 400, month0, day, h, m, s) - FOUR_CENTURIES_MS;
}

function firstOfMonth(wall: number, addMonths: number): number {
  const d = new Date(wall);
  return utc(d.getUTCFullYear(), d.getUTCMonth() + addMonths, 1, 0, 0, 0);
}

function floorTo(ms: number, unit: number): number {
  return Math.floor(ms / unit) * unit + 0;
}

/** Memo offset for the size, or -1 for MINUTE, which needs no zone. */
function slot(size: WindowSize): number {
  switch (size) {
    case "MINUTE":
      return -1;
    case "HOUR":
      return 0;
    case "DAY":
      return 2;
    case "MONTH":
      return 4;
    default:
      throw new RangeError(`unknown window size ${JSON.stringify(size)}`);
  }
}

function checkInstant(ms: number): void {
  if (!Number.isFinite(ms)) throw new RangeError(`not a finite instant: ${ms}`);
}

function zoneOrThrow(tz: string): Zone {
  const z = lookupZone(tz);
  if (z === null) throw new RangeError(`invalid time zone ${JSON.stringify(tz)}`);
  return z;
}

function lookupZone(tz: string): Zone | null {
  if (tz === lastName && lastZone !== null) return lastZone;
  let z = zones.get(tz);
  if (z === undefined) {
    if (invalidZones.has(tz)) return null;
    const fmt = UTC_NAMES.has(tz) ? null : makeFormatter(tz);
    if (fmt === undefined) {
      if (invalidZones.size >= ZONE_CACHE_LIMIT) invalidZones.clear();
      invalidZones.add(tz);
      return null;
    }
    z = { fmt, memo: new Float64Array(6).fill(NaN), byLabel: [new Map(), new Map(), new Map()] };
    if (zones.size >= ZONE_CACHE_LIMIT) {
      const oldest = zones.keys().next();
      if (!oldest.done) zones.delete(oldest.value);
    }
    zones.set(tz, z);
  }
  lastName = tz;
  lastZone = z;
  return z;
}

function makeFormatter(tz: string): Intl.DateTimeFormat | undefined {
  // IANA names start with a letter. Newer Intl also takes offsets such as "+05:30", which
  // OpenMeter (Go's time.LoadLocation) rejects; so do we. Names are at most ~32 characters.
  if (typeof tz !== "string" || tz.length === 0 || tz.length > 64 || !/^[A-Za-z]/.test(tz)) {
    return undefined;
  }
  try {
    return new Intl.DateTimeFormat("en-US-u-ca-gregory-nu-latn", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
  } catch {
    return undefined;
  }
}
