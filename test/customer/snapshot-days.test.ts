import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { groupByValues, meterSubjects, snapshotExtent, snapshotUsage, type SnapshotQuery } from "../../src/db/reports";
import type { GroupFilters } from "../../src/domain/group-filter";
import type { Aggregation } from "../../src/domain/meter";
import { DAY_MS, GRANULE_MS, granuleOf, planWindows } from "../../src/domain/rollup";
import type { WindowSize } from "../../src/domain/windows";
import { HOUR, MINUTE, api, createKey, createMeter, customerStub, event, ingestOk, iso, uid } from "../helpers/api";
import { rng } from "../helpers/rng";
import migration from "../../migrations/0013_snapshot_days.sql?raw";

// D1's day rows (usage_snapshot_days): every flush rebuilds the UTC days it touched from their
// 15-minute rows, and namespace-wide reports read whole UTC days from them. Checked two ways: the
// day rows equal the fold of the 15-minute rows after every kind of flush, and every report answers
// the same with day rows as from 15-minute rows alone.

const AGGREGATIONS: Aggregation[] = ["SUM", "COUNT", "AVG", "MIN", "MAX", "LATEST"];
const subjects = ["days-a", "days-b", "days-c"];
let key: string;
let namespace: string;
const meters = new Map<Aggregation, string>();
const now = Date.now();
const oldest = granuleOf(now - 4 * DAY_MS) + 7 * MINUTE;

/** Values in quarters: their sums are exact in any order, so both ways of adding up agree to the bit. */
function events(seed: number, n: number, subject: string) {
  const r = rng(seed);
  return Array.from({ length: n }, () =>
    event({ subject, type: "days", time: iso(oldest + Math.floor(r() * (now - 10 * MINUTE - oldest))), data: { v: Math.floor(r() * 400) / 4 - 20, model: ["a", "b", "c"][Math.floor(r() * 3)] } }),
  );
}

async function flushAll() {
  for (const subject of subjects) {
    const report = await customerStub(subject, namespace).flushSnapshots({ namespace, subject });
    expect(report?.applied, JSON.stringify(report)).toBe(true);
  }
}

/** Day rows that differ from the fold of their day's 15-minute rows, both ways round (0 when they agree). */
async function daysOutOfStep(): Promise<number> {
  const fold = `SELECT namespace, meter_id, day_start, subject, group_key, sum(sum) AS sum, sum(count) AS count, min(min) AS min, max(max) AS max,
      max(latest_at) AS latest_at, max(CASE WHEN rn = 1 THEN latest END) AS latest
    FROM (SELECT *, window_start - window_start % ${DAY_MS} AS day_start,
            row_number() OVER (PARTITION BY meter_id, window_start - window_start % ${DAY_MS}, subject, group_key ORDER BY latest_at DESC) AS rn
          FROM usage_snapshots WHERE namespace = ?1)
    GROUP BY namespace, meter_id, day_start, subject, group_key`;
  const days = "SELECT namespace, meter_id, day_start, subject, group_key, sum, count, min, max, latest_at, latest FROM usage_snapshot_days WHERE namespace = ?1";
  const r = await env.DB.prepare(`SELECT (SELECT count(*) FROM (${days} EXCEPT ${fold})) + (SELECT count(*) FROM (${fold} EXCEPT ${days})) AS n`).bind(namespace).first<{ n: number }>();
  return r!.n;
}

beforeAll(async () => {
  ({ key, namespace } = await createKey({ scopes: ["admin"], namespace: uid("ns-days") }));
  for (const aggregation of AGGREGATIONS) {
    const body = { slug: `days_${aggregation.toLowerCase()}`, eventType: "days", aggregation, groupBy: { model: "$.model" }, ...(aggregation === "COUNT" ? {} : { valueProperty: "$.v" }) };
    const m = await createMeter(body, key);
    expect(m.status, m.text).toBe(201);
    meters.set(aggregation, m.body.id);
  }
  for (const [i, subject] of subjects.entries()) await ingestOk(events(i + 1, 400, subject), { key });
  await flushAll();
});

describe("day rows", () => {
  it("are the fold of their day's 15-minute rows after first flushes, later flushes into past days, and re-metering", async () => {
    const rows = await env.DB.prepare("SELECT count(*) AS n FROM usage_snapshot_days WHERE namespace = ?").bind(namespace).first<{ n: number }>();
    expect(rows!.n).toBeGreaterThan(subjects.length * AGGREGATIONS.length * 4);
    expect(await daysOutOfStep()).toBe(0);
    // More usage in days already flushed: those day rows are rebuilt, not added to twice.
    for (const [i, subject] of subjects.entries()) await ingestOk(events(i + 11, 100, subject), { key });
    await flushAll();
    expect(await daysOutOfStep()).toBe(0);
    // Re-metering without the group-by key resets every window: the days lose their per-model rows.
    const slug = "days_sum";
    const put = await api("PUT", `/api/v1/meters/${slug}`, { key, body: { name: slug, groupBy: {} } });
    expect(put.status, put.text).toBe(200);
    for (const subject of subjects) await ingestOk([event({ subject, type: "days", data: { v: 1, model: "a" } })], { key });
    await flushAll();
    expect(await daysOutOfStep()).toBe(0);
    const groups = await env.DB.prepare("SELECT DISTINCT group_key FROM usage_snapshot_days WHERE namespace = ? AND meter_id = ?").bind(namespace, meters.get("SUM")).all();
    expect(groups.results).toEqual([{ group_key: "{}" }]);
  });

  it("answer every report as the 15-minute rows alone do", async () => {
    const db = database(env.DB);
    const to = granuleOf(now) + GRANULE_MS;
    const cases: { windowSize: WindowSize | null; timeZone: string; from: number | null; to: number }[] = [
      { windowSize: null, timeZone: "UTC", from: null, to },
      { windowSize: null, timeZone: "UTC", from: granuleOf(now - 3 * DAY_MS) + 3 * GRANULE_MS, to: granuleOf(now - HOUR) },
      { windowSize: "DAY", timeZone: "UTC", from: null, to },
      { windowSize: "HOUR", timeZone: "UTC", from: null, to },
      { windowSize: "DAY", timeZone: "Asia/Kolkata", from: null, to },
      { windowSize: "DAY", timeZone: "America/St_Johns", from: null, to },
      { windowSize: "MONTH", timeZone: "Europe/Berlin", from: null, to },
      { windowSize: "DAY", timeZone: "Asia/Kathmandu", from: granuleOf(now - 2 * DAY_MS) + GRANULE_MS, to },
    ];
    let compared = 0;
    for (const [aggregation, meterId] of meters) {
      for (const c of cases) {
        const extent = await snapshotExtent(db, namespace, meterId, c.from, c.to);
        const plan = planWindows({ ...c, extent });
        expect(plan.ok).toBe(true);
        if (!plan.ok) continue;
        for (const shape of [{ groupBy: [], bySubject: false }, { groupBy: ["model"], bySubject: true }]) {
          const filters: GroupFilters = shape.bySubject ? [["model", { $ne: "c" }]] : [];
          const q: SnapshotQuery = { namespace, meterId, aggregation, ...shape, filters };
          const sorted = (rows: unknown[] | null) => JSON.stringify(rows?.map((r) => JSON.stringify(r)).sort());
          const withDays = await snapshotUsage(db, q, plan.windows, 100_000);
          expect(withDays?.length).toBeGreaterThan(0);
          expect(sorted(withDays), `${aggregation} ${JSON.stringify(c)} ${JSON.stringify(shape)}`).toBe(sorted(await snapshotUsage(db, { ...q, daysFrom: Infinity }, plan.windows, 100_000)));
          compared++;
        }
      }
    }
    expect(compared).toBe(AGGREGATIONS.length * 8 * 2);
  });

  it("list the same subjects and group-by values as the 15-minute rows alone do", async () => {
    const db = database(env.DB);
    const ranges: [number, number][] = [
      [0, now],
      [granuleOf(now - 3 * DAY_MS) + 5 * GRANULE_MS, now - 7 * HOUR],
      [granuleOf(now - 2 * DAY_MS), granuleOf(now - DAY_MS) + 3 * MINUTE],
    ];
    for (const meterId of meters.values()) {
      for (const [from, to] of ranges) {
        const subjectsSeen = await meterSubjects(db, namespace, meterId, from, to);
        expect(subjectsSeen.length).toBeGreaterThan(0);
        expect(subjectsSeen, `${from}..${to}`).toEqual(await meterSubjects(db, namespace, meterId, from, to, Infinity));
        expect(await groupByValues(db, namespace, meterId, "model", from, to)).toEqual(await groupByValues(db, namespace, meterId, "model", from, to, Infinity));
      }
    }
    // One subject's usage only in a day that lies whole inside the range: listed from its day rows.
    const lone = uid("days-lone");
    const day = granuleOf(now - 3 * DAY_MS) - (granuleOf(now - 3 * DAY_MS) % DAY_MS);
    await ingestOk([event({ subject: lone, type: "days", time: iso(day + 5 * HOUR), data: { v: 1, model: "z" } })], { key });
    expect((await customerStub(lone, namespace).flushSnapshots({ namespace, subject: lone }))?.applied).toBe(true);
    // COUNT: the first test re-metered SUM without its group-by key.
    const count = meters.get("COUNT")!;
    expect(await meterSubjects(db, namespace, count, day - HOUR, day + DAY_MS + HOUR)).toContain(lone);
    expect(await groupByValues(db, namespace, count, "model", day - HOUR, day + DAY_MS + HOUR)).toContain("z");
  });

  it("are rebuilt from the 15-minute rows by migration 0013's backfill, which README's Deploy section says to run again after a roll-out", async () => {
    const before = await env.DB.prepare("SELECT count(*) AS n FROM usage_snapshot_days WHERE namespace = ?").bind(namespace).first<{ n: number }>();
    // As a flush of code from before day rows would leave them: one day's rows gone, another's stale.
    await env.DB.prepare("DELETE FROM usage_snapshot_days WHERE namespace = ? AND day_start = (SELECT min(day_start) FROM usage_snapshot_days WHERE namespace = ?)").bind(namespace, namespace).run();
    await env.DB.prepare("UPDATE usage_snapshot_days SET sum = sum + 1 WHERE namespace = ? AND day_start = (SELECT max(day_start) FROM usage_snapshot_days WHERE namespace = ?)").bind(namespace, namespace).run();
    expect(await daysOutOfStep()).toBeGreaterThan(0);
    const backfill = migration.split("--> statement-breakpoint").find((part) => part.includes("INSERT INTO usage_snapshot_days"));
    await env.DB.prepare(backfill!).run();
    expect(await daysOutOfStep()).toBe(0);
    expect(await env.DB.prepare("SELECT count(*) AS n FROM usage_snapshot_days WHERE namespace = ?").bind(namespace).first()).toEqual(before);
  });
});
