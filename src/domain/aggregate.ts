import { groupPredicate, type GroupFilters } from "./group-filter";
import type { Aggregation } from "./meter";
import { nextWindowStart, windowStart, type WindowSize } from "./windows";

/** What every stored aggregate keeps, at any granularity: enough to answer every aggregation. */
export interface Aggregates {
  sum: number;
  count: number;
  min: number | null;
  max: number | null;
  latest_at: number;
  latest: number | null;
}

/** The part of an accumulator a bucket adds to (camel-case `latestAt`, as in memory). */
export interface Running {
  sum: number;
  count: number;
  min: number | null;
  max: number | null;
  latestAt: number;
  latest: number | null;
}

/**
 * Adds one stored aggregate into a running one: sums add, extremes keep, LATEST keeps the latest
 * event time and, on a tie, the aggregate added later — the rule of the bucket upsert too
 * (src/customer/buckets.ts), so every fold of the same buckets agrees.
 */
export function addAggregates(into: Running, b: Aggregates): void {
  into.sum += b.sum;
  into.count += b.count;
  if (b.min !== null && (into.min === null || b.min < into.min)) into.min = b.min;
  if (b.max !== null && (into.max === null || b.max > into.max)) into.max = b.max;
  if (b.latest_at >= into.latestAt) {
    into.latestAt = b.latest_at;
    into.latest = b.latest;
  }
}

/** A stored minute bucket, as the query reads it. */
export interface Bucket extends Aggregates {
  minute: number;
  group_key: string;
}

export interface UniqueValue {
  minute: number;
  group_key: string;
  value: string;
}

export interface FoldSpec {
  aggregation: Aggregation;
  /** Inclusive start, epoch ms (minute-aligned); null = from the first bucket. */
  from: number | null;
  /** Exclusive end, epoch ms (minute-aligned). */
  to: number;
  windowSize: WindowSize | null;
  windowTimeZone: string;
  /** Group-by keys to keep apart in the answer (the meter's own keys only). */
  groupBy: readonly string[];
  /** Only buckets whose group-by values pass every one of these (filterGroupBy and advancedMeterGroupByFilters). */
  filters: GroupFilters;
}

export interface FoldedRow {
  windowStart: number;
  windowEnd: number;
  groupBy: Record<string, string | null>;
  value: number;
}

interface Acc extends Running {
  windowStart: number;
  groupBy: Record<string, string | null>;
  uniques: Set<string> | null;
}

/**
 * Folds minute buckets into the windows and groups a query asks for. Every aggregation composes
 * exactly from minutes: SUM/COUNT add, MIN/MAX take extremes, AVG divides the summed sum by the
 * summed count, LATEST keeps the latest event time, UNIQUE_COUNT unions the stored distinct values.
 */
export function foldBuckets(spec: FoldSpec, buckets: readonly Bucket[], uniques: readonly UniqueValue[] = []): FoldedRow[] {
  const parsed = new Map<string, Record<string, string | null> | null>();
  const passes = groupPredicate(spec.filters);
  const select = (groupKey: string) => {
    let g = parsed.get(groupKey);
    if (g === undefined) {
      const all = JSON.parse(groupKey) as Record<string, string | null>;
      g = passes(all) ? pick(all, spec.groupBy) : null;
      parsed.set(groupKey, g);
    }
    return g;
  };
  const firstMinute = buckets[0]?.minute ?? uniques[0]?.minute ?? spec.to;
  const wholeStart = spec.from ?? firstMinute;
  const winOf = (minute: number) => (spec.windowSize ? windowStart(minute, spec.windowSize, spec.windowTimeZone) : wholeStart);
  const accs = new Map<string, Acc>();
  const accFor = (minute: number, group: Record<string, string | null>) => {
    const ws = winOf(minute);
    const key = `${ws}\u0000${JSON.stringify(group)}`;
    let a = accs.get(key);
    if (!a) {
      a = { windowStart: ws, groupBy: group, sum: 0, count: 0, min: null, max: null, latestAt: -Infinity, latest: null, uniques: null };
      accs.set(key, a);
    }
    return a;
  };

  for (const b of buckets) {
    const group = select(b.group_key);
    if (!group) continue;
    addAggregates(accFor(b.minute, group), b);
  }
  for (const u of uniques) {
    const group = select(u.group_key);
    if (!group) continue;
    const a = accFor(u.minute, group);
    (a.uniques ??= new Set()).add(u.value);
  }

  const rows: FoldedRow[] = [];
  for (const a of accs.values()) {
    if (a.count === 0 && !a.uniques) continue;
    const windowEnd = spec.windowSize ? nextWindowStart(a.windowStart, spec.windowSize, spec.windowTimeZone) : spec.to;
    rows.push({ windowStart: a.windowStart, windowEnd, groupBy: a.groupBy, value: valueOf(spec.aggregation, a) });
  }
  rows.sort((x, y) => x.windowStart - y.windowStart || compareGroups(x.groupBy, y.groupBy));
  return rows;
}

function valueOf(aggregation: Aggregation, a: Acc): number {
  switch (aggregation) {
    case "SUM":
      return a.sum;
    case "COUNT":
      return a.count;
    case "AVG":
      return a.count === 0 ? 0 : a.sum / a.count;
    case "MIN":
      return a.min ?? 0;
    case "MAX":
      return a.max ?? 0;
    case "LATEST":
      return a.latest ?? 0;
    case "UNIQUE_COUNT":
      return a.uniques?.size ?? 0;
  }
}

function pick(all: Record<string, string | null>, keys: readonly string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  // Own keys only, as in groupPredicate: a key the stored group lacks is null.
  for (const k of keys) out[k] = Object.hasOwn(all, k) ? (all[k] ?? null) : null;
  return out;
}

function compareGroups(a: Record<string, string | null>, b: Record<string, string | null>): number {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
