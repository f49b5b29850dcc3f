import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { readBuckets, readUniques } from "../../src/customer/buckets";
import { readPrefolded } from "../../src/customer/prefold";
import { migrate } from "../../src/customer/schema";
import { Sql } from "../../src/customer/sql";
import { foldBuckets, type FoldSpec } from "../../src/domain/aggregate";
import type { GroupFilters } from "../../src/domain/group-filter";
import { MINUTE, customerStub, uid } from "../helpers/api";
import { rng } from "../helpers/rng";

// Per-subject queries fold buckets per window in SQLite first (src/customer/prefold.ts); the answer
// must be the one folding every minute bucket gives, for every aggregation, window, zone and group.

const AGGREGATIONS = ["SUM", "COUNT", "AVG", "MIN", "MAX", "LATEST", "UNIQUE_COUNT"] as const;
const WINDOWS = [
  [null, "UTC"],
  ["MINUTE", "UTC"],
  ["HOUR", "UTC"],
  ["HOUR", "Asia/Kathmandu"],
  ["DAY", "America/New_York"],
  ["DAY", "Asia/Kolkata"],
  ["MONTH", "Europe/Berlin"],
] as const;
const GROUPS = ['{"model":"a","region":"eu"}', '{"model":"a","region":"us"}', '{"model":"b","region":"eu"}', '{"model":"b"}'];
// 70 days across New York's and Berlin's autumn clock changes, and a month end.
const START = Date.UTC(2026, 9, 1, 5, 17);
const METER = "m1";

function seed(sql: Sql) {
  const r = rng(7);
  const buckets: unknown[][] = [];
  const uniques: unknown[][] = [];
  for (let i = 0; i < 600; i++) {
    const minute = START + Math.floor(r() * 70 * 24 * 60) * MINUTE;
    for (const g of GROUPS) {
      if (r() < 0.5) continue;
      const values = Array.from({ length: 1 + Math.floor(r() * 3) }, () => Math.floor(r() * 40) / 2 - 5);
      // Few distinct offsets: LATEST ties across groups in one minute, broken by group key order.
      const latestAt = minute + Math.floor(r() * 3) * 1000;
      buckets.push([METER, minute, g, values.reduce((a, b) => a + b, 0), values.length, Math.min(...values), Math.max(...values), latestAt, values[0]]);
      for (const v of values) uniques.push([METER, minute, g, `u${Math.abs(v) % 6}`]);
    }
  }
  sql.exec(
    `INSERT INTO buckets (meter_id, minute, group_key, sum, count, min, max, latest_at, latest)
     SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8 FROM json_each(?) WHERE true
     ON CONFLICT DO NOTHING`,
    JSON.stringify(buckets),
  );
  sql.exec("INSERT INTO uniques (meter_id, minute, group_key, value) SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?) WHERE true ON CONFLICT DO NOTHING", JSON.stringify(uniques));
}

describe("per-subject queries folded per window in SQLite", () => {
  it("answer what folding every minute bucket answers", async () => {
    const compared = await runInDurableObject(customerStub(uid("prefold")), (_, state) => {
      const sql = new Sql(state.storage);
      migrate(sql);
      seed(sql);
      const ranges: [number | null, number][] = [
        [null, START + 71 * 24 * 60 * MINUTE],
        [START + 3 * 24 * 60 * MINUTE + 7 * MINUTE, START + 40 * 24 * 60 * MINUTE - 13 * MINUTE],
      ];
      const groupings: [string[], GroupFilters][] = [
        [[], []],
        [["model"], []],
        [["region"], [["model", { $eq: "a" }]]],
      ];
      let n = 0;
      for (const aggregation of AGGREGATIONS) {
        for (const [windowSize, windowTimeZone] of WINDOWS) {
          for (const [from, to] of ranges) {
            for (const [groupBy, filters] of groupings) {
              const spec: FoldSpec = { aggregation, from, to, windowSize, windowTimeZone, groupBy, filters };
              const lo = from ?? 0;
              const unique = aggregation === "UNIQUE_COUNT";
              const expected = foldBuckets(spec, readBuckets(sql, METER, lo, to), unique ? readUniques(sql, METER, lo, to) : []);
              const pre = readPrefolded(sql, METER, lo, to, windowSize, windowTimeZone, aggregation);
              const label = `${aggregation} ${windowSize} ${windowTimeZone} ${from} ${groupBy}`;
              expect(expected.length, label).toBeGreaterThan(0);
              expect(foldBuckets(spec, pre.buckets, pre.uniques), label).toEqual(expected);
              if (windowSize !== "MINUTE" && windowSize !== "HOUR") expect(pre.buckets.length, label).toBeLessThan(expected.length * GROUPS.length + 1);
              n++;
            }
          }
        }
      }
      return n;
    });
    expect(compared).toBe(AGGREGATIONS.length * WINDOWS.length * 2 * 3);
  }, 30_000);
});

describe("per-subject queries over sparse history", () => {
  it("fold only windows near the data: two buckets 56 years apart bind a handful of HOUR windows, not 490,000", async () => {
    const result = await runInDurableObject(customerStub(uid("prefold-sparse")), (_, state) => {
      const sql = new Sql(state.storage);
      migrate(sql);
      // Buckets outlive their events' retention: a customer back after years away leaves a gap like
      // this one (ingest refuses times before the retention window, so 1970 only exaggerates it).
      const now = Date.UTC(2026, 10, 1, 12, 34);
      for (const m of [0, now]) sql.exec("INSERT INTO buckets (meter_id, minute, group_key, sum, count, min, max, latest_at, latest) VALUES (?, ?, '{}', 1, 1, 1, 1, ?, 1)", METER, m, m + 5);
      // Count the windows handed to SQLite as json_each arrays.
      let windows = 0;
      const exec = sql.exec.bind(sql);
      sql.exec = ((query: string, ...params: SqlStorageValue[]) => {
        for (const p of params) if (typeof p === "string" && p.startsWith("[[")) windows += (JSON.parse(p) as unknown[]).length;
        return exec(query, ...params);
      }) as typeof sql.exec;
      const spec: FoldSpec = { aggregation: "SUM", from: null, to: now + MINUTE, windowSize: "HOUR", windowTimeZone: "Asia/Kathmandu", groupBy: [], filters: [] };
      const expected = foldBuckets(spec, readBuckets(sql, METER, 0, spec.to));
      const pre = readPrefolded(sql, METER, 0, spec.to, "HOUR", "Asia/Kathmandu", "SUM");
      return { expected, got: foldBuckets(spec, pre.buckets, pre.uniques), windows };
    });
    expect(result.got).toEqual(result.expected);
    expect(result.expected).toHaveLength(2);
    // Before: every hour from 1970 to 2026 went to SQLite (2.3 s of one object's CPU for two buckets).
    expect(result.windows).toBeLessThan(200);
  }, 60_000);
});
