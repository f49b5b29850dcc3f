import type { Running } from "./aggregate";
import { utf8Length } from "./chunks";
import { LIMITS } from "./cloudevent";
import { compileJsonPath, type JsonPath } from "./jsonpath";
import type { MeterDef } from "./meter";
import { groupValue, readNumber, readScalarKey } from "./values";
import { minuteOf } from "./windows";

/** A validated CloudEvent as a customer Durable Object sees it. */
export interface MeterEvent {
  /** Position in the client's request, so answers can point at it. */
  index: number;
  id: string;
  source: string;
  type: string;
  /** Event time, epoch ms. */
  time: number;
  data: Record<string, unknown> | null;
}

/** One minute of one meter for one combination of group-by values, as added by a set of events. */
export interface BucketDelta extends Running {
  meterId: string;
  minute: number;
  groupKey: string;
}

export interface UniqueEntry {
  meterId: string;
  minute: number;
  groupKey: string;
  value: string;
}

export interface CompiledMeter {
  def: MeterDef;
  value: JsonPath | null;
  groupBy: [key: string, path: JsonPath][];
  /** groupKeyOf's memo: the group values (length-prefixed, "-" for null) → bucket key. */
  keys?: Map<string, string>;
}

/** A reading of one event by one meter: what it adds, or why it cannot be metered. */
export type Reading =
  | { ok: true; meter: CompiledMeter; groupKey: string; value: number | null; unique: string | null }
  | { ok: false; reason: string };

export class MeterSet {
  readonly byType = new Map<string, CompiledMeter[]>();
  readonly byId = new Map<string, CompiledMeter>();
  /** Meters whose paths this build cannot evaluate; they count nothing until fixed. */
  readonly invalid: { slug: string; reason: string }[] = [];

  constructor(defs: readonly MeterDef[]) {
    for (const def of defs) {
      const compiled = compileMeter(def);
      if ("reason" in compiled) {
        this.invalid.push({ slug: def.slug, reason: compiled.reason });
        continue;
      }
      this.byId.set(def.id, compiled);
      const list = this.byType.get(def.eventType) ?? [];
      list.push(compiled);
      this.byType.set(def.eventType, list);
    }
  }
}

export function compileMeter(def: MeterDef): CompiledMeter | { reason: string } {
  let value: JsonPath | null = null;
  if (def.aggregation !== "COUNT" && def.valueProperty) {
    const c = compileJsonPath(def.valueProperty);
    if (!c.ok) return { reason: `valueProperty: ${c.reason}` };
    value = c.path;
  }
  const groupBy: [string, JsonPath][] = [];
  for (const key of Object.keys(def.groupBy).sort()) {
    const c = compileJsonPath(def.groupBy[key]!);
    if (!c.ok) return { reason: `groupBy.${key}: ${c.reason}` };
    groupBy.push([key, c.path]);
  }
  return { def, value, groupBy };
}

/**
 * Group-by values as a JSON object with sorted keys: the bucket key. Keeping the names (not just
 * positions) lets buckets written under an older groupBy definition still be read correctly.
 */
export function groupKeyOf(meter: CompiledMeter, data: Record<string, unknown> | null): string {
  const { groupBy } = meter;
  if (groupBy.length === 0) return "{}";
  // A batch repeats a few group values many times: the JSON key is built once per distinct tuple
  // (the object and JSON.stringify per event were a visible share of ingest CPU).
  const values = groupBy.map(([, path]) => (data ? groupValue(path.get(data)) : null));
  let memo = "";
  // Length-prefixed, so no two tuples share a memo whatever characters the values hold.
  for (const v of values) memo += v === null ? "-" : `${v.length}:${v}`;
  const keys = (meter.keys ??= new Map());
  let key = keys.get(memo);
  if (key === undefined) {
    const out: Record<string, string | null> = {};
    groupBy.forEach(([name], i) => (out[name] = values[i]!));
    key = JSON.stringify(out);
    if (memo.length > GROUP_KEY_MEMO_CHARS) return key;
    if (keys.size >= GROUP_KEY_MEMO) keys.clear();
    keys.set(memo, key);
  }
  return key;
}

/** Distinct group-value tuples remembered per meter (a bound on memory, not a limit on groups). */
const GROUP_KEY_MEMO = 4096;
/**
 * Longer tuples are not remembered: 4,096 tuples of values up to an event's size would hold gigabytes
 * in an isolate of 128 MB. Labels (models, regions, customers' ids) are far shorter.
 */
const GROUP_KEY_MEMO_CHARS = 1024;

/**
 * The most one reading (its group-by values as the bucket key, and a UNIQUE_COUNT value) may take, in
 * UTF-8: as much as a request. Only values read several times reach it (a groupBy naming one large
 * property under several keys), and such a reading made a bucket row over production's 2 MB per row,
 * which failed the whole batch on every resend.
 */
export const MAX_READING_BYTES = LIMITS.bytesPerRequest;

function readingTooLarge(slug: string, groupKey: string, unique: string | null): Reading | null {
  const chars = groupKey.length + (unique?.length ?? 0);
  if (chars * 3 <= MAX_READING_BYTES) return null;
  const bytes = utf8Length(groupKey) + (unique === null ? 0 : utf8Length(unique));
  if (bytes <= MAX_READING_BYTES) return null;
  return { ok: false, reason: `meter ${slug}: its group-by values${unique === null ? "" : " and unique value"} take ${bytes} bytes; at most ${MAX_READING_BYTES} are stored per event and meter` };
}

export function readEvent(meter: CompiledMeter, ev: MeterEvent): Reading {
  const groupKey = groupKeyOf(meter, ev.data);
  const { aggregation, valueProperty, slug } = meter.def;
  if (aggregation === "COUNT" || !meter.value) return readingTooLarge(slug, groupKey, null) ?? { ok: true, meter, groupKey, value: null, unique: null };
  const raw = ev.data ? meter.value.get(ev.data) : undefined;
  if (aggregation === "UNIQUE_COUNT") {
    const r = readScalarKey(raw);
    if (!r.ok) return { ok: false, reason: `meter ${slug}: ${r.reason} at ${valueProperty}` };
    return readingTooLarge(slug, groupKey, r.value) ?? { ok: true, meter, groupKey, value: null, unique: r.value };
  }
  const r = readNumber(raw);
  if (!r.ok) return { ok: false, reason: `meter ${slug}: ${r.reason} at ${valueProperty}` };
  return readingTooLarge(slug, groupKey, null) ?? { ok: true, meter, groupKey, value: r.value, unique: null };
}

/** Reads every meter of the event's type; the first meter that cannot read the event rejects it whole. */
export function readAll(meters: MeterSet, ev: MeterEvent): { ok: true; readings: Reading[] } | { ok: false; reason: string } {
  const list = meters.byType.get(ev.type);
  if (!list) return { ok: true, readings: [] };
  const readings: Reading[] = [];
  for (const m of list) {
    if (m.def.eventFrom !== null && ev.time < m.def.eventFrom) continue;
    const r = readEvent(m, ev);
    if (!r.ok) return r;
    readings.push(r);
  }
  return { ok: true, readings };
}

/** Folds readings into per-minute bucket deltas, so a batch costs one row per bucket, not per event. */
export class BucketAccumulator {
  // meter id → group key → minute → delta: found without building a composite key string per event.
  private readonly index = new Map<string, Map<string, Map<number, BucketDelta>>>();
  private readonly list: BucketDelta[] = [];
  private readonly uniqueSet = new Map<string, UniqueEntry>();

  add(r: Extract<Reading, { ok: true }>, time: number): void {
    this.addReading(r.meter.def.id, r.groupKey, r.value, r.unique, time);
  }

  /** One reading given by its parts (a Worker's batch plan, src/customer/batch.ts, carries them so). */
  addReading(meterId: string, groupKey: string, value: number | null, unique: string | null, time: number): void {
    const minute = minuteOf(time);
    const b = this.bucket(meterId, groupKey, minute, time, value);
    b.count += 1;
    if (value !== null) {
      b.sum += value;
      b.min = b.min === null ? value : Math.min(b.min, value);
      b.max = b.max === null ? value : Math.max(b.max, value);
      // Ties go to the later-ingested event, the same rule the bucket upsert applies.
      if (time >= b.latestAt) {
        b.latestAt = time;
        b.latest = value;
      }
    }
    if (unique !== null) {
      const ukey = `${meterId}\u0000${minute}\u0000${groupKey}\u0000${unique}`;
      if (!this.uniqueSet.has(ukey)) this.uniqueSet.set(ukey, { meterId, minute, groupKey, value: unique });
    }
  }

  private bucket(meterId: string, groupKey: string, minute: number, time: number, value: number | null): BucketDelta {
    let groups = this.index.get(meterId);
    if (!groups) this.index.set(meterId, (groups = new Map()));
    let minutes = groups.get(groupKey);
    if (!minutes) groups.set(groupKey, (minutes = new Map()));
    let b = minutes.get(minute);
    if (!b) {
      b = { meterId, minute, groupKey, sum: 0, count: 0, min: null, max: null, latestAt: time, latest: value };
      minutes.set(minute, b);
      this.list.push(b);
    }
    return b;
  }

  /** An accumulator holding deltas computed elsewhere (a Worker's batch plan, src/customer/batch.ts). */
  static of(deltas: readonly BucketDelta[], uniques: readonly UniqueEntry[]): BucketAccumulator {
    const acc = new BucketAccumulator();
    for (const d of deltas) Object.assign(acc.bucket(d.meterId, d.groupKey, d.minute, d.latestAt, d.latest), d);
    for (const u of uniques) acc.uniqueSet.set(`${u.meterId}\u0000${u.minute}\u0000${u.groupKey}\u0000${u.value}`, { ...u });
    return acc;
  }

  get size(): number {
    return this.list.length;
  }

  deltas(): BucketDelta[] {
    return [...this.list];
  }

  uniques(): UniqueEntry[] {
    return [...this.uniqueSet.values()];
  }
}
