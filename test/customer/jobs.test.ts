import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Jobs } from "../../src/customer/jobs";
import { migrate } from "../../src/customer/schema";
import { Sql } from "../../src/customer/sql";
import { customerStub, uid } from "../helpers/api";

// Jobs remembers the due times it read or wrote, so that a counted batch does not read them back;
// these check that the memory never hides a job from the table or from the alarm.
describe("jobs: the due table and the alarm", () => {
  const inObject = <T>(fn: (jobs: Jobs, sql: Sql, storage: DurableObjectStorage) => Promise<T>) =>
    runInDurableObject(customerStub(uid("jobs")), (_, state) => {
      const sql = new Sql(state.storage);
      // A new object has no tables until its first write (CustomerDO.claim).
      migrate(sql);
      return fn(new Jobs(sql, state.storage), sql, state.storage);
    });
  const row = (sql: Sql, name: string) => sql.one<{ value: number }>("SELECT value FROM meta WHERE key = ?", `job:${name}`)?.value;

  it("a due time written in a transaction that was rolled back is not trusted afterwards", async () => {
    await inObject(async (jobs, sql, storage) => {
      const soon = Date.now() + 3_600_000;
      expect(() =>
        sql.transaction(() => {
          jobs.due("flush", soon);
          throw new Error("the batch failed");
        }),
      ).toThrow("the batch failed");
      expect(row(sql, "flush")).toBeUndefined();
      jobs.due("flush", soon + 1000);
      expect(row(sql, "flush")).toBe(soon + 1000);
      await jobs.arm();
      expect(await storage.getAlarm()).toBe(soon + 1000);
    });
  });

  it("keeps the earliest due time, and arms only when something moved", async () => {
    await inObject(async (jobs, sql, storage) => {
      const t = Date.now() + 3_600_000;
      jobs.due("prune", t);
      jobs.due("prune", t + 5000);
      expect(row(sql, "prune")).toBe(t);
      await jobs.arm();
      expect(await storage.getAlarm()).toBe(t);
      const statements = sql.counters.statements;
      jobs.due("prune", t + 10_000);
      await jobs.arm();
      expect(sql.counters.statements).toBe(statements);
      jobs.due("flush", t - 1000);
      await jobs.arm();
      expect(await storage.getAlarm()).toBe(t - 1000);
    });
  });

  it("a job that run() removed is due again when made due while a later job runs", async () => {
    await inObject(async (jobs, sql, storage) => {
      const past = Date.now() - 1000;
      jobs.due("deliver", past);
      jobs.due("flush", past);
      const later = Date.now() + 3_600_000;
      let release!: () => void;
      const flushing = new Promise<void>((r) => (release = r));
      const running = jobs.run({
        // Made due during its own run (as an ingest may), yet it answers "nothing left": its row goes.
        deliver: () => {
          jobs.due("deliver", past);
          return null;
        },
        flush: async () => {
          await flushing;
          return null;
        },
        prune: () => null,
      });
      await new Promise((r) => setTimeout(r, 10));
      expect(row(sql, "deliver")).toBeUndefined();
      jobs.due("deliver", later); // a crossing while the flush job awaits D1
      release();
      await running;
      expect(row(sql, "deliver")).toBe(later);
      expect(await storage.getAlarm()).toBe(later);
    });
  });
});
