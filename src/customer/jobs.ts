import { getMeta, setMeta } from "./schema";
import type { Sql } from "./sql";

/**
 * One alarm serves a table of due jobs (DESIGN invariant 7): each job's next due time is kept in
 * meta as `job:<name>`, and the alarm is set to the earliest. A job returns when it wants to run
 * next (null = nothing left to do). Alarms retry only a few times, so jobs never throw for an
 * expected failure; an unexpected one is logged and the job is tried again a minute later.
 */
export type JobName = "prune" | "deliver" | "flush";
export type JobRunner = (now: number) => Promise<number | null> | number | null;

const RETRY_UNEXPECTED_MS = 60_000;

export class Jobs {
  private alarmAt: number | null | undefined;
  // The stored due times as last read or written (null: no row), and whether any changed since the
  // alarm was last set: every counted batch makes `prune` and `flush` due, and reading their rows
  // back each time was two statements per batch for nothing. Dropped after any rollback.
  private known = new Map<JobName, number | null>();
  private knownAt = 0;
  private changed = true;

  constructor(
    private readonly sql: Sql,
    private readonly storage: DurableObjectStorage,
  ) {}

  /** Makes `name` due at `at` (or earlier, if it already is). Safe to call inside a transaction. */
  due(name: JobName, at: number): void {
    const current = this.stored(name);
    if (current !== null && at >= current) return;
    setMeta(this.sql, `job:${name}`, at);
    this.known.set(name, at);
    this.changed = true;
  }

  private stored(name: JobName): number | null {
    this.forgetAfterRollback();
    let at = this.known.get(name);
    if (at === undefined) this.known.set(name, (at = getMeta<number>(this.sql, `job:${name}`) ?? null));
    return at;
  }

  private forgetAfterRollback(): void {
    if (this.knownAt === this.sql.rollbacks) return;
    this.known.clear();
    this.knownAt = this.sql.rollbacks;
    this.changed = true;
  }

  /** Sets the alarm to the earliest due job; call after the transaction that made jobs due. */
  async arm(): Promise<void> {
    this.forgetAfterRollback();
    if (!this.changed && this.alarmAt !== undefined) return;
    this.changed = false;
    const next = this.sql.one<{ at: number | null }>("SELECT min(value) AS at FROM meta WHERE key LIKE 'job:%'")?.at ?? null;
    if (this.alarmAt === undefined) this.alarmAt = await this.storage.getAlarm();
    if (next === null || this.alarmAt === next) return;
    // Only ever move the alarm earlier from here; alarm() re-arms from scratch after it runs.
    if (this.alarmAt !== null && this.alarmAt <= next) return;
    this.sql.counters.alarmsSet++;
    await this.storage.setAlarm(next);
    this.alarmAt = next;
  }

  /** Runs every due job, then re-arms for the earliest remaining one. Never throws. */
  async run(runners: Record<JobName, JobRunner>, now = Date.now()): Promise<void> {
    this.alarmAt = null;
    this.changed = true;
    const due = this.sql.all<{ key: string; value: number }>("SELECT key, value FROM meta WHERE key LIKE 'job:%' AND value <= ?", now);
    for (const { key } of due) {
      const name = key.slice(4) as JobName;
      let next: number | null;
      try {
        next = await runners[name](now);
      } catch (e) {
        console.error(`job ${name} failed; retrying in a minute`, e);
        next = now + RETRY_UNEXPECTED_MS;
      }
      // Written through the memory: a due() in a later runner's await must see this row as it is now.
      if (next === null) this.sql.exec("DELETE FROM meta WHERE key = ?", key);
      else setMeta(this.sql, key, next);
      this.known.set(name, next);
    }
    this.changed = true;
    await this.arm();
  }
}
