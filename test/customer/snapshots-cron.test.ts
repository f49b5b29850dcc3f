import { createExecutionContext, createScheduledController, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { Sql } from "../../src/customer/sql";
import { database } from "../../src/db/client";
import { overdueSubjects, pruneSnapshots } from "../../src/db/snapshots";
import { dayOf, granuleOf } from "../../src/domain/rollup";
import worker from "../../src/index";
import { runCron } from "../../src/jobs/cron";
import { DAY, MINUTE, createMeter, customerStub, event, ingestOk, iso, uid } from "../helpers/api";

const NS = "default";
const base = granuleOf(Date.now()) - DAY;
let meterId: string;

beforeAll(async () => {
  meterId = (await createMeter({ slug: "cron_tokens", eventType: "cron", aggregation: "SUM", valueProperty: "$.tokens" })).body.id;
});

const ingestTokens = (subject: string, tokens: number, at = base + MINUTE) => ingestOk([event({ subject, type: "cron", time: iso(at), data: { tokens } })]);

/** As if the Durable Object's alarm had been lost: no flush job, no alarm. */
async function loseAlarm(subject: string) {
  await runInDurableObject(customerStub(subject), async (_i, state) => {
    new Sql(state.storage).exec("DELETE FROM meta WHERE key LIKE 'job:%'");
    await state.storage.deleteAlarm();
  });
}

async function d1Sum(subject: string): Promise<number | null> {
  const row = await env.DB.prepare("SELECT sum(sum) AS s FROM usage_snapshots WHERE namespace = ? AND subject = ? AND meter_id = ?").bind(NS, subject, meterId).first<{ s: number | null }>();
  return row?.s ?? null;
}

async function runScheduled(at = Date.now()) {
  const controller = createScheduledController({ scheduledTime: at, cron: "*/5 * * * *" });
  const ctx = createExecutionContext();
  await worker.scheduled(controller, env, ctx);
  await waitOnExecutionContext(ctx);
}

/** Backdates the pending state row (seq 0) that the subject's first stored usage wrote. */
async function owedSince(subject: string, at: number) {
  const r = await env.DB.prepare("UPDATE snapshot_subjects SET as_of = ?1, flushed_at = ?1 WHERE namespace = ? AND subject = ? AND seq = 0 AND pending = 1").bind(at, NS, subject).run();
  expect(r.meta.changes).toBe(1);
}

const nudge = (subject: string) => customerStub(subject).flushSnapshots({ namespace: NS, subject });

describe("the cron safety net", () => {
  it("flushes a subject that stored usage long ago and never flushed (e.g. its alarm was lost)", async () => {
    const s = uid("lost");
    await ingestTokens(s, 4);
    await loseAlarm(s);
    await owedSince(s, Date.now() - 10 * MINUTE);
    expect(await d1Sum(s)).toBeNull();

    await runScheduled();
    expect(await d1Sum(s)).toBe(4);
    const state = await env.DB.prepare("SELECT pending FROM snapshot_subjects WHERE namespace = ? AND subject = ?").bind(NS, s).first();
    expect(state).toEqual({ pending: 0 });
    // Its state row is no longer pending, so it is no longer picked.
    expect(await overdueSubjects(database(env.DB), Date.now(), 1_000)).not.toContainEqual({ namespace: NS, subject: s });
  });

  it("flushes a subject whose last flush left more to send and that has gone quiet since", async () => {
    const s = uid("stalled");
    await ingestTokens(s, 1);
    await nudge(s);
    await ingestTokens(s, 2, base + 2 * MINUTE);
    await loseAlarm(s);
    await env.DB.prepare("UPDATE snapshot_subjects SET pending = 1, flushed_at = ? WHERE namespace = ? AND subject = ?").bind(Date.now() - 10 * MINUTE, NS, s).run();
    expect(await d1Sum(s)).toBe(1);

    await runScheduled();
    expect(await d1Sum(s)).toBe(3);
  });

  it("leaves a subject alone while its flush is not yet late", async () => {
    const s = uid("punctual");
    await ingestTokens(s, 1);
    await nudge(s);
    await ingestTokens(s, 5, base + 2 * MINUTE);
    await env.DB.prepare("UPDATE snapshot_subjects SET pending = 1, flushed_at = ? WHERE namespace = ? AND subject = ?").bind(Date.now() - 30_000, NS, s).run();
    const report = await runCron(env, Date.now());
    expect(report.failed).toBe(0);
    expect(await d1Sum(s)).toBe(1);
    // Its own alarm still flushes it.
    expect(await nudge(s)).toMatchObject({ applied: true, windows: 1 });
    expect(await d1Sum(s)).toBe(6);
  });

  it("a subject with nothing counted writes its state row when nudged", async () => {
    const s = uid("empty");
    await ingestOk([event({ subject: s, type: "no_meter_counts_this" })]);
    await owedSince(s, Date.now() - 10 * MINUTE);
    await runScheduled();
    expect(await env.DB.prepare("SELECT seq, pending FROM snapshot_subjects WHERE namespace = ? AND subject = ?").bind(NS, s).first()).toEqual({ seq: 1, pending: 0 });
  });
});

describe("snapshot retention", () => {
  const retentionDays = 400; // SNAPSHOT_RETENTION_DAYS in wrangler.toml
  const row = (subject: string, windowStart: number) =>
    env.DB.prepare(
      "INSERT INTO usage_snapshots (namespace, meter_id, window_start, subject, group_key, sum, count, min, max, latest_at, latest) VALUES (?, ?, ?, ?, '{}', 1, 1, 1, 1, ?, 1)",
    ).bind(NS, meterId, windowStart, subject, windowStart);
  const unique = (subject: string, windowStart: number) =>
    env.DB.prepare("INSERT INTO usage_snapshot_uniques (namespace, meter_id, window_start, subject, group_key, value) VALUES (?, ?, ?, ?, '{}', 'u')").bind(NS, meterId, windowStart, subject);
  const dayRow = (subject: string, dayStart: number) =>
    env.DB.prepare(
      "INSERT INTO usage_snapshot_days (namespace, meter_id, day_start, subject, group_key, sum, count, min, max, latest_at, latest) VALUES (?, ?, ?, ?, '{}', 1, 1, 1, 1, ?, 1)",
    ).bind(NS, meterId, dayStart, subject, dayStart);
  const count = async (subject: string) =>
    (await env.DB.prepare(
      `SELECT (SELECT count(*) FROM usage_snapshots WHERE subject = ?1) + (SELECT count(*) FROM usage_snapshot_uniques WHERE subject = ?1)
         + (SELECT count(*) FROM usage_snapshot_days WHERE subject = ?1) AS n`,
    ).bind(subject).first<{ n: number }>())!.n;

  it("the cron prunes rows whose window or day started before SNAPSHOT_RETENTION_DAYS, counted in whole UTC days, and keeps the rest", async () => {
    const s = uid("old");
    // A UTC day's start, so that a day row and the 15-minute rows it folds are pruned together.
    const cutoff = dayOf(Date.now() - retentionDays * DAY);
    await env.DB.batch([
      row(s, cutoff - 15 * MINUTE), row(s, cutoff - 100 * DAY), unique(s, cutoff - 15 * MINUTE), dayRow(s, cutoff - DAY),
      row(s, cutoff), unique(s, cutoff + 15 * MINUTE), dayRow(s, cutoff),
    ]);
    expect(await count(s)).toBe(7);
    await runScheduled();
    const { results } = await env.DB.prepare("SELECT window_start FROM usage_snapshots WHERE subject = ?").bind(s).all();
    expect(results).toEqual([{ window_start: cutoff }]);
    expect(await env.DB.prepare("SELECT day_start FROM usage_snapshot_days WHERE subject = ?").bind(s).all().then((r) => r.results)).toEqual([{ day_start: cutoff }]);
    expect(await count(s)).toBe(3);
  });

  it("deletes in bounded statements and reports how many rows it removed", async () => {
    const s = uid("bulk");
    const old = granuleOf(Date.now() - (retentionDays + 10) * DAY);
    await env.DB.batch(Array.from({ length: 7 }, (_, i) => row(s, old + i * 15 * MINUTE)));
    const first = await pruneSnapshots(database(env.DB), dayOf(Date.now() - retentionDays * DAY), 2, 2);
    expect(first.rows).toBe(4);
    const rest = await pruneSnapshots(database(env.DB), dayOf(Date.now() - retentionDays * DAY), 2, 10);
    expect(rest.rows).toBe(3);
    expect(await count(s)).toBe(0);
  });
});
