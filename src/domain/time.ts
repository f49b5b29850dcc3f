const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses an RFC 3339 date-time to epoch ms, or null. Stricter than Date.parse, which accepts
 * "2023-02-30" (as March 2) and many non-RFC forms; fractions beyond milliseconds are truncated.
 */
export function parseRfc3339(s: string): number | null {
  // On the ingest hot path (every event's time): the usual shape is read from char codes; anything
  // else goes through the regex. Both apply the same checks.
  const fast = parseUtcFast(s);
  if (fast !== undefined) return fast;
  const m = RFC3339.exec(s);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const millis = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  let offset = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offset = (m[9] === "+" ? 1 : -1) * (oh * 60 + om) * 60_000;
  }
  return utc(year, month - 1, day, hour, minute, second, millis) - offset;
}

/**
 * `YYYY-MM-DDTHH:MM:SS[.fff…]Z` (the form toISOString and most clients send) without a regex match
 * array; undefined for any other shape, which the caller parses in full. The events of a batch
 * mostly share their minute, so the last minute seen is remembered (`YYYY-MM-DDTHH:MM` → epoch ms)
 * and only the seconds are read for the next one.
 */
function parseUtcFast(s: string): number | null | undefined {
  const n = s.length;
  if (n < 20 || n > 30) return undefined;
  const last = s.charCodeAt(n - 1);
  if ((last !== 90 && last !== 122) || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  const t = s.charCodeAt(10);
  if (t !== 84 && t !== 116) return undefined;
  const second = digits(s, 17, 2);
  if (second < 0) return undefined;
  let millis = 0;
  if (n > 20) {
    // A fraction of 1–9 digits; milliseconds are its first three (the rest truncated).
    if (s.charCodeAt(19) !== 46 || n - 21 < 1 || n - 21 > 9) return undefined;
    const frac = digits(s, 20, n - 21);
    if (frac < 0) return undefined;
    const len = n - 21;
    millis = len >= 3 ? Math.floor(frac / 10 ** (len - 3)) : frac * (len === 1 ? 100 : 10);
  }
  let base: number;
  if (s.startsWith(lastMinute.prefix)) base = lastMinute.ms;
  else {
    const year = digits(s, 0, 4);
    const month = digits(s, 5, 2);
    const day = digits(s, 8, 2);
    const hour = digits(s, 11, 2);
    const minute = digits(s, 14, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0) return undefined;
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59) return null;
    base = utc(year, month - 1, day, hour, minute);
    lastMinute = { prefix: s.slice(0, 16), ms: base };
  }
  if (second > 59) return null;
  return base + second * 1000 + millis;
}

/** The minute parseUtcFast read last; the prefix is always a valid `YYYY-MM-DDTHH:MM`. */
let lastMinute = { prefix: "\u0000", ms: 0 };

/** The decimal value of s[from, from + count), or -1 if any of them is not a digit. */
function digits(s: string, from: number, count: number): number {
  let v = 0;
  for (let i = from; i < from + count; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** Date.UTC, except that years 0–99 are those years: Date.UTC maps them to 1900–1999. */
function utc(year: number, monthIndex: number, day: number, hour = 0, minute = 0, second = 0, millis = 0): number {
  if (year >= 100) return Date.UTC(year, monthIndex, day, hour, minute, second, millis);
  const d = new Date(0);
  d.setUTCFullYear(year, monthIndex, day);
  return d.setUTCHours(hour, minute, second, millis);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The proleptic Gregorian calendar, as Date uses for every year. */
function daysInMonth(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1]!;
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

/** The first and last instants with a four-digit year, which RFC 3339 requires. */
export const MIN_RFC3339_MS = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
export const MAX_RFC3339_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/**
 * An instant as RFC 3339 (UTC). One computed past year 9999 (a month window or a grant expiry from
 * input near its end) is shown as the last representable instant: toISOString would write
 * "+010000-…", which no RFC 3339 parser reads.
 */
export const iso = (ms: number) => new Date(Math.min(MAX_RFC3339_MS, Math.max(MIN_RFC3339_MS, ms))).toISOString();
