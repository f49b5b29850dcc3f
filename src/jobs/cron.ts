import { customer } from "../customer/client";
import { database } from "../db/client";
import { overdueSubjects, pruneSnapshots } from "../db/snapshots";
import { granuleOf, overdueAfterMs } from "../domain/rollup";
import { settings, type Env } from "../env";

/**
 * The cron trigger (wrangler.toml `[triggers]`): a safety net and housekeeping, not the main path.
 * Each customer's Durable Object flushes its own changes from its alarm; the cron nudges the ones
 * D1 shows as late (more to send and no flush for a while, or registered and never flushed —
 * e.g. Durable Objects that counted usage before snapshots existed) and prunes snapshot rows
 * older than SNAPSHOT_RETENTION_DAYS.
 */

/** Nudges per run: each is a Durable Object subrequest, and a run should stay well inside the Worker's limits. */
export const MAX_NUDGES_PER_RUN = 50;
const NUDGE_CONCURRENCY = 10;

export interface CronReport {
  nudged: number;
  failed: number;
  /** D1 rows the nudged flushes wrote. */
  rowsWritten: number;
  pruned: { rows: number; uniques: number };
}

export async function scheduled(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
  ctx.waitUntil(runCron(env, controller.scheduledTime));
}

export async function runCron(env: Env, now: number): Promise<CronReport> {
  const db = database(env.DB);
  const s = settings(env);
  const report: CronReport = { nudged: 0, failed: 0, rowsWritten: 0, pruned: { rows: 0, uniques: 0 } };

  const late = await overdueSubjects(db, now - overdueAfterMs(s.SNAPSHOT_INTERVAL_SECONDS), MAX_NUDGES_PER_RUN);
  for (let i = 0; i < late.length; i += NUDGE_CONCURRENCY) {
    const results = await Promise.allSettled(late.slice(i, i + NUDGE_CONCURRENCY).map((id) => customer(env, id).flushSnapshots(id)));
    results.forEach((r, j) => {
      if (r.status === "fulfilled" && !r.value?.error) {
        report.nudged++;
        report.rowsWritten += r.value?.rowsWritten ?? 0;
      } else {
        report.failed++;
        console.error(`cron: nudging ${late[i + j]!.namespace}/${late[i + j]!.subject} failed`, r.status === "rejected" ? r.reason : r.value?.error);
      }
    });
  }

  report.pruned = await pruneSnapshots(db, granuleOf(now - s.SNAPSHOT_RETENTION_DAYS * 86_400_000));
  if (report.nudged || report.failed || report.pruned.rows || report.pruned.uniques) console.log(JSON.stringify({ msg: "snapshot cron", ...report }));
  return report;
}
