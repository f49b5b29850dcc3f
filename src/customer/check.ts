import { matchesFilters, type EntitlementValue } from "../domain/entitlement";
import { settle } from "../domain/values";
import { readEvent, type MeterEvent, type MeterSet } from "../domain/metering";
import { minuteOf } from "../domain/windows";
import { fail, findForValue, ok, type EntitlementRow, type Result } from "./entitlements";
import { grantsOf } from "./grants";
import type { IngestOutcome } from "./ingest";
import { balanceIfLatest, balanceNow, toValue } from "./segments";
import type { Sql } from "./sql";
import { uniqueSeen, type Metered } from "./usage";

/**
 * Atomic check-and-record (beyond OpenMeter, which keeps its value API off the request path).
 *
 * The decision and the recording of the event are one synchronous transaction of the subject's
 * Durable Object, and the runtime runs one such transaction at a time: N concurrent checks against a
 * hard limit L admit exactly min(N, L) units. The event is recorded through the ordinary ingest path,
 * so it is deduplicated like any event: a check whose event is already stored was admitted before
 * (a refused check stores nothing) and is answered "allowed" again without consuming twice.
 *
 * Rules:
 * - amount: the caller's, else the event's contribution to the feature (SUM: its value, COUNT: 1,
 *   UNIQUE_COUNT: 1 unless the value was already seen in the period, LATEST: its value; 0 when the
 *   feature's group-by filters or the meter's eventFrom leave it out, or its time is outside the
 *   current period), else 1.
 * - hard limit: allowed iff balance >= amount; LATEST: iff the new value fits in the grants.
 *   Soft limit, boolean and static entitlements: always allowed.
 */
export interface CheckInput {
  /** Feature key or id (or entitlement id). */
  feature: string;
  amount: number | null;
  event: MeterEvent | null;
}

export interface CheckAnswer extends EntitlementValue {
  allowed: boolean;
  entitlementId: string;
  /** The amount decided on (metered entitlements). */
  amount?: number;
  /** The event was already stored: this check was answered before and consumed nothing now. */
  duplicate?: boolean;
}

export type RecordEvents = (events: MeterEvent[]) => IngestOutcome;

export function checkAndRecord(sql: Sql, meters: MeterSet, input: CheckInput, now: number, record: RecordEvents): Result<CheckAnswer> {
  const e = findForValue(sql, input.feature);
  if (!e) return { ok: false, code: "not_found", detail: `the subject has no entitlement for feature ${input.feature}`, missing: "entitlement" };
  const ev = input.event;
  const m = e.def.metered;

  if (ev && stored(sql, ev)) {
    const value = m ? toValue(e, balanceNow(sql, e, grantsOf(sql, e.id), now)) : plain(e);
    return ok({ allowed: true, entitlementId: e.id, duplicate: true, ...value });
  }
  if (!m) {
    if (ev) {
      const r = recordOne(record, ev);
      if (!r.ok) return r;
    }
    return ok({ allowed: true, entitlementId: e.id, ...plain(e) });
  }

  const grants = grantsOf(sql, e.id);
  const before = balanceNow(sql, e, grants, now);
  let amount = input.amount ?? 1;
  if (ev) {
    const c = contribution(sql, e, m, meters, ev);
    if (!c.ok) return c;
    if (input.amount === null) amount = c.value;
  }
  let allowed = m.isSoftLimit;
  if (!allowed && m.aggregation === "LATEST") {
    const replaces = !ev || e.latestAt === null || ev.time >= e.latestAt;
    allowed = (replaces ? balanceIfLatest(e, grants, now, amount, ev ? ev.time : now) : before).overage <= 0;
  } else if (!allowed) {
    allowed = before.balance >= settle(amount);
  }
  if (!allowed || !ev) return ok({ allowed, entitlementId: e.id, amount, ...toValue(e, before) });

  const r = recordOne(record, ev);
  if (!r.ok) return r;
  // Counting updated the stored counters: read the entitlement again for the value after.
  const after = findForValue(sql, e.id)!;
  return ok({ allowed, entitlementId: e.id, amount, ...toValue(after, balanceNow(sql, after, grants, now)) });
}

function plain(e: EntitlementRow): EntitlementValue {
  return { hasAccess: true, ...(e.def.config !== null ? { config: e.def.config } : {}) };
}

function stored(sql: Sql, ev: MeterEvent): boolean {
  return sql.one("SELECT 1 AS x FROM events WHERE source = ? AND id = ?", ev.source, ev.id) !== undefined;
}

function recordOne(record: RecordEvents, ev: MeterEvent): Result<null> {
  const o = record([ev]);
  const rejected = o.rejected[0];
  if (rejected) return fail("validation_failed", `the event cannot be recorded: ${rejected.reason}`, "event");
  return ok(null);
}

/** What the event adds to the feature's usage in the current period (see the header). */
function contribution(sql: Sql, e: EntitlementRow, m: Metered, meters: MeterSet, ev: MeterEvent): Result<number> {
  const meter = meters.byId.get(m.meterId);
  if (!meter) return fail("conflict", `feature ${e.featureKey} is metered by meter ${m.meterSlug}, which no longer exists`);
  if (ev.type !== meter.def.eventType) {
    return fail("validation_failed", `event type ${ev.type} is not metered by feature ${e.featureKey}: its meter ${m.meterSlug} counts events of type ${meter.def.eventType}`, "event.type");
  }
  if (meter.def.eventFrom !== null && ev.time < meter.def.eventFrom) return ok(0);
  const r = readEvent(meter, ev);
  if (!r.ok) return fail("validation_failed", `the event cannot be metered: ${r.reason}`, "event.data");
  const minute = minuteOf(ev.time);
  if (minute < e.segStart || minute >= e.segEnd || !matchesFilters(r.groupKey, m)) return ok(0);
  switch (m.aggregation) {
    case "SUM":
    case "LATEST":
      return ok(r.value ?? 0);
    case "COUNT":
      return ok(1);
    case "UNIQUE_COUNT":
      return ok(r.unique !== null && !uniqueSeen(sql, m, e.segStart, e.segEnd, r.unique) ? 1 : 0);
  }
}
