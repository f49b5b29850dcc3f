import { customer } from "../customer/client";
import { database } from "../db/client";
import { overdueSubjects, owesNothing, pruneSnapshots, type OverdueSubject } from "../db/snapshots";
import { dayOf, overdueAfterMs } from "../domain/rollup";
import { settings, type Env } from "../env";

/**
 * The cron trigger (wrangler.toml `[triggers]`): a safety net and housekeeping, not the main path.
 * Each customer's Durable Object flushes its own changes from its alarm; the cron nudges the ones
 * D1 shows as late (more to send and no flush for a while, or never flushed since their first
 * stored usage — e.g. a broken alarm chain, or Durable Objects that counted usage before snapshots
 * existed) and prunes snapshot rows older than SNAPSHOT_RETENTION_DAYS.
 */

/** Nudges per run: each is a Durable Object subrequest, and a run should stay well inside the Worker's limits. */
export const MAX_NUDGES_PER_RUN = 50;
const NUDGE_CONCURRENCY = 10;

export interface CronReport {
  nudged: number;
  /** Nudged subjects whose Durable Object has stored nothing: their state row no longer says a flush is owed. */
  cleared: number;
  failed: number;
  /** D1 rows the nudged flushes wrote. */
  rowsWritten: number;
  pruned: { rows: number; uniques: number; days: number };
}

export async function scheduled(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
  ctx.waitUntil(runCron(env, controller.scheduledTime));
}

export async function runCron(env: Env, now: number): Promise<CronReport> {
  const db = database(env.DB);
  const s = settings(env);
  const report: CronReport = { nudged: 0, cleared: 0, failed: 0, rowsWritten: 0, pruned: { rows: 0, uniques: 0, days: 0 } };

  const cleared: OverdueSubject[] = [];
  const before = now - overdueAfterMs(s.SNAPSHOT_INTERVAL_SECONDS);
  const late = await overdueSubjects(db, before, MAX_NUDGES_PER_RUN);
  for (let i = 0; i < late.length; i += NUDGE_CONCURRENCY) {
    const results = await Promise.allSettled(late.slice(i, i + NUDGE_CONCURRENCY).map((id) => customer(env, id).flushSnapshots(id)));
    results.forEach((r, j) => {
      const flushed = r.status === "fulfilled" ? r.value : undefined;
      if (flushed === null) {
        cleared.push(late[i + j]!);
      } else if (flushed && !flushed.error) {
        report.nudged++;
        report.rowsWritten += flushed.rowsWritten;
      } else {
        report.failed++;
        console.error(`cron: nudging ${late[i + j]!.namespace}/${late[i + j]!.subject} failed`, r.status === "rejected" ? r.reason : r.value?.error);
      }
    });
  }
  await owesNothing(db, cleared, before, now);
  report.cleared = cleared.length;

  report.pruned = await pruneSnapshots(db, dayOf(now - s.SNAPSHOT_RETENTION_DAYS * 86_400_000));
  if (report.nudged || report.cleared || report.failed || report.pruned.rows || report.pruned.uniques || report.pruned.days) console.log(JSON.stringify({ msg: "snapshot cron", ...report }));
  return report;
}
