/**
 * How a meter reads the value a JSONPath found in an event, matching OpenMeter:
 * SUM/AVG/MIN/MAX take "a number or a string that can be parsed to a number", UNIQUE_COUNT
 * takes a string, and group-by values are strings.
 */

export type ReadResult<T> = { ok: true; value: T } | { ok: false; reason: string };

// Go's strconv.ParseFloat decimal syntax minus what OpenMeter users never mean: no
// "Inf"/"NaN", no hex floats, no underscores, no surrounding whitespace. The integer part is
// `\d+` followed by a group that must start with "." so the regex cannot backtrack
// quadratically on a long run of digits.
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * The largest magnitude a metered value (or an entitlement amount) may have. Doubles overflow to
 * Infinity past 1.8e308: two events of 1e308 in one minute made a bucket sum Infinity, which JSON
 * carries as null — the batch failed its NOT NULL write on every retry (a poison batch), and an
 * entitlement whose usage had overflowed answered 500 from then on. Below this bound, more events
 * than could ever be sent (1e208) would be needed to overflow any sum.
 */
export const MAX_ABS_VALUE = 1e100;

// Reasons end up in ingest responses; a megabyte-long string must not be echoed back whole.
const MAX_SHOWN = 40;

export function readNumber(v: unknown): ReadResult<number> {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return { ok: false, reason: "value is not finite" };
    if (Math.abs(v) > MAX_ABS_VALUE) return { ok: false, reason: `value is beyond ±${MAX_ABS_VALUE}: ${v}` };
    // -0 would print as "0" in JSON but survive in MIN/MAX and in SQL; make it plain 0.
    return { ok: true, value: v === 0 ? 0 : v };
  }
  if (typeof v === "string") {
    if (!DECIMAL.test(v)) return { ok: false, reason: `value is not a number: ${quote(v)}` };
    const n = Number(v);
    // Like ParseFloat's ErrRange: "1e999" is well-formed but does not fit a float64.
    if (!Number.isFinite(n)) return { ok: false, reason: `value is not finite: ${quote(v)}` };
    if (Math.abs(n) > MAX_ABS_VALUE) return { ok: false, reason: `value is beyond ±${MAX_ABS_VALUE}: ${quote(v)}` };
    return { ok: true, value: n === 0 ? 0 : n };
  }
  const missing = missingReason(v);
  if (missing !== null) return { ok: false, reason: missing };
  return { ok: false, reason: `value is not a number: ${describe(v)}` };
}

/**
 * The key UNIQUE_COUNT counts distinct values of.
 *
 * Choice: the key is the value's string form with no type prefix, so 1 and "1" (and true and
 * "true") are the same key. OpenMeter extracts the value as a string before counting, so this
 * is what its counts show; and producers that send an id sometimes as a number and sometimes as
 * a string get one distinct value, not two. Numbers use String(n) (shortest round-trip form:
 * 1.0 becomes "1", 1e21 becomes "1e+21", -0 becomes "0").
 */
export function readScalarKey(v: unknown): ReadResult<string> {
  if (typeof v === "string") return { ok: true, value: v };
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return { ok: false, reason: "value is not finite" };
    return { ok: true, value: String(v) };
  }
  if (typeof v === "boolean") return { ok: true, value: v ? "true" : "false" };
  const missing = missingReason(v);
  if (missing !== null) return { ok: false, reason: missing };
  return { ok: false, reason: `value is not a string, number or boolean: ${describe(v)}` };
}

/**
 * A group-by value. Missing or non-scalar values become null rather than failing: the API's
 * MeterQueryRow.groupBy values are nullable, so such an event still counts, under a null group.
 */
export function groupValue(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : null;
  if (typeof v === "boolean") return v ? "true" : "false";
  return null;
}

function missingReason(v: unknown): string | null {
  if (v === undefined) return "value is missing";
  if (v === null) return "value is null";
  return null;
}

function describe(v: unknown): string {
  if (typeof v === "string") return quote(v);
  if (typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function quote(s: string): string {
  return JSON.stringify(s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}…` : s);
}

/**
 * Entitlement usage, balances and amounts as burned, decided and answered: a fraction kept to 15
 * significant digits, all a double holds exactly; integers as they are (exact below 2^53). Usage is
 * summed two ways — the running counters add batch by batch, reads of past instants sum the buckets
 * in SQLite, which compensates for rounding — and their last digit differed: usage 0.9999999999999999 from
 * the counters and 1 from the buckets, and a hard-limit check of 0.4 refused against a balance of
 * 0.3999999999999999 (grant 1, usage 0.1 + 0.2 + 0.3).
 */
export function settle(x: number): number {
  return Number.isInteger(x) ? x : Number(x.toPrecision(15));
}
