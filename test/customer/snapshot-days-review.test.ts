import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { pruneSnapshots } from "../../src/db/snapshots";
import { dayOf, GRANULE_MS } from "../../src/domain/rollup";
import migration from "../../migrations/0013_snapshot_days.sql?raw";
import { DAY, api, createKey, createMeter, customerStub, event, ingestOk, uid } from "../helpers/api";

// Review of the day rows (usage_snapshot_days): limits and edges the first tests did not reach.

describe("namespace-wide queries at D1's 100 bound parameters", () => {
  let key: string;
  let namespace: string;
  const slug = uid("wide");
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
  const subject = uid("wide-s");

  beforeAll(async () => {
    ({ key, namespace } = await createKey({ scopes: ["admin", "read", "ingest"], namespace: uid("ns-wide") }));
    await createMeter({ slug, eventType: "wide", aggregation: "SUM", valueProperty: "$.v", groupBy: Object.fromEntries(keys.map((k) => [k, `$.${k}`])) }, key);
    await ingestOk([event({ subject, type: "wide", data: { v: 3, ...Object.fromEntries(keys.map((k) => [k, "x"])) } })], { key });
    const r = await customerStub(subject, namespace).flushSnapshots({ namespace, subject });
    expect(r?.applied).toBe(true);
  });

  it("answers a query grouped by all 20 keys of a meter (40 parameters of group-by before day rows)", async () => {
    const res = await api("POST", `/api/v1/meters/${slug}/query`, { key, body: { groupBy: keys } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.map((r: { value: number }) => r.value)).toEqual([3]);
  });

  it("answers a query with 50 filter operators and group-by keys (94 parameters before day rows)", async () => {
    const filter = { $or: Array.from({ length: 49 }, (_, i) => ({ $eq: i === 0 ? "x" : `n${i}` })) };
    const res = await api("POST", `/api/v1/meters/${slug}/query`, { key, body: { groupBy: keys, advancedMeterGroupByFilters: { k0: filter } } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.map((r: { value: number }) => r.value)).toEqual([3]);
  });
});

describe("day rows at the edge of retention", () => {
  const retentionDays = 400; // SNAPSHOT_RETENTION_DAYS in wrangler.toml

  it("a report over a day the cron is part way through pruning answers what its 15-minute rows still hold", async () => {
    const { key, namespace } = await createKey({ scopes: ["admin", "read"], namespace: uid("ns-ret") });
    const slug = uid("ret");
    const meterId = (await createMeter({ slug, eventType: "ret", aggregation: "SUM", valueProperty: "$.v" }, key)).body.id as string;
    const cutoff = dayOf(Date.now() - retentionDays * DAY);
    const day = cutoff - DAY;
    const subject = uid("ret-s");
    // One day's 96 rows of 1 each and the day row they fold to, as flushes would have left them.
    await env.DB.batch([
      ...Array.from({ length: 96 }, (_, i) =>
        env.DB.prepare(
          "INSERT INTO usage_snapshots (namespace, meter_id, window_start, subject, group_key, sum, count, min, max, latest_at, latest) VALUES (?, ?, ?, ?, '{}', 1, 1, 1, 1, ?, 1)",
        ).bind(namespace, meterId, day + i * GRANULE_MS, subject, day + i * GRANULE_MS),
      ),
      env.DB.prepare(
        "INSERT INTO usage_snapshot_days (namespace, meter_id, day_start, subject, group_key, sum, count, min, max, latest_at, latest) VALUES (?, ?, ?, ?, '{}', 96, 96, 1, 1, ?, 1)",
      ).bind(namespace, meterId, day, subject, day + 95 * GRANULE_MS),
    ]);
    const total = async () => {
      const res = await api("POST", `/api/v1/meters/${slug}/query`, { key, body: { from: new Date(day).toISOString(), to: new Date(cutoff - 1).toISOString() } });
      expect(res.status, res.text).toBe(200);
      return (res.body.data as { value: number }[]).reduce((a, r) => a + r.value, 0);
    };
    expect(await total()).toBe(96);
    // A cron run whose budget ends inside the day: the oldest 40 rows are gone, the day row not yet.
    const pruned = await pruneSnapshots(database(env.DB), cutoff, 40, 1);
    expect(pruned).toEqual({ rows: 40, uniques: 0, days: 0 });
    const left = await env.DB.prepare("SELECT sum(sum) AS n FROM usage_snapshots WHERE namespace = ?").bind(namespace).first<{ n: number }>();
    expect(left!.n).toBe(56);
    expect(await total()).toBe(56);
  });
});

describe("migration 0013's backfill, run again after a roll-out", () => {
  it("removes day rows whose 15-minute rows old code deleted (a reset during the roll-out)", async () => {
    const namespace = uid("ns-bf");
    const day = dayOf(Date.now()) - 3 * DAY;
    const row = (group: string, i: number) =>
      env.DB.prepare(
        "INSERT INTO usage_snapshots (namespace, meter_id, window_start, subject, group_key, sum, count, min, max, latest_at, latest) VALUES (?, 'm', ?, 's', ?, 1, 1, 1, 1, ?, 1)",
      ).bind(namespace, day + i * GRANULE_MS, group, day + i * GRANULE_MS);
    await env.DB.batch([row('{"model":"a"}', 0), row('{"model":"a"}', 1), row('{"model":"b"}', 2)]);
    const backfill = async () => {
      for (const part of migration.split("--> statement-breakpoint").filter((p) => !p.includes("CREATE TABLE"))) await env.DB.prepare(part).run();
    };
    await backfill();
    const days = () => env.DB.prepare("SELECT group_key, sum FROM usage_snapshot_days WHERE namespace = ? ORDER BY group_key").bind(namespace).all().then((r) => r.results);
    expect(await days()).toEqual([{ group_key: '{"model":"a"}', sum: 2 }, { group_key: '{"model":"b"}', sum: 1 }]);
    // Code from before day rows re-meters without the key: the reset replaces the window's rows, day rows untouched.
    await env.DB.prepare("DELETE FROM usage_snapshots WHERE namespace = ? AND group_key <> '{}'").bind(namespace).run();
    await env.DB.batch([row("{}", 0), row("{}", 1), row("{}", 2)]);
    await backfill();
    expect(await days()).toEqual([{ group_key: "{}", sum: 3 }]);
  });
});
