import { env } from "cloudflare:workers";
import { granuleOf } from "../../src/domain/rollup";
import { createMeter, customerStub, event, iso } from "./api";

// Shared by the snapshot test files (test/customer/snapshots*.test.ts): the subject's flush to D1
// and what D1 then holds.

export const NS = "default";

/** A recent quarter hour far enough back that +/- a few windows stays inside retention and the past. */
export const base = granuleOf(Date.now()) - 2 * 86_400_000;

/** A SUM meter of `$.tokens` grouped by `$.model` for events of `eventType`; resolves its id. */
export async function createSnapshotMeter(slug: string, eventType: string): Promise<string> {
  return (await createMeter({ slug, eventType, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } })).body.id;
}

/** Events of `eventType` for a subject at a time. */
export const snapshotEvent = (eventType: string) => (subject: string, time: number, data: Record<string, unknown>) => event({ subject, time: iso(time), type: eventType, data });

/** The subject's flush through its Durable Object (the cron's nudge). */
export async function flush(subject: string) {
  const report = await customerStub(subject).flushSnapshots({ namespace: NS, subject });
  if (!report) throw new Error(`${subject} has no Durable Object state`);
  return report;
}

export async function d1Rows(subject: string, meterId: string) {
  const { results } = await env.DB.prepare(
    "SELECT window_start, group_key, sum, count, min, max, latest_at, latest FROM usage_snapshots WHERE namespace = ? AND subject = ? AND meter_id = ? ORDER BY window_start, group_key",
  )
    .bind(NS, subject, meterId)
    .all<{ window_start: number; group_key: string; sum: number; count: number; min: number; max: number; latest_at: number; latest: number }>();
  return results;
}

export async function d1State(subject: string) {
  return env.DB.prepare("SELECT seq, as_of, pending FROM snapshot_subjects WHERE namespace = ? AND subject = ?").bind(NS, subject).first<{ seq: number; as_of: number; pending: number }>();
}
