import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { CustomerDO } from "../../src/customer/do";
import { Sql } from "../../src/customer/sql";
import { api, customerStub, ingestOk, uid } from "../helpers/api";
import { check, setup, usage, valueOk, type Setup } from "../helpers/entitlements";

async function decide(s: Setup): Promise<Record<string, unknown>> {
  const r = await check({ subject: s.subject, feature: s.feature, amount: 1 });
  expect(r.status, r.text).toBe(200);
  return r.body;
}

/** Counts the runtime's transactions opened through `storage` from now on. */
function countTransactions(storage: DurableObjectStorage): { n: number } {
  const seen = { n: 0 };
  const original = storage.transactionSync.bind(storage);
  storage.transactionSync = <T>(fn: () => T): T => {
    seen.n++;
    return original(fn);
  };
  return seen;
}

// Reads (entitlement value, a check without an event) run outside a transaction until they write
// (Sql.readsFirst): these check that a read which turns out to write is still all-or-nothing.
describe("reads first", () => {
  it("runs a function that only reads once, without a transaction", async () => {
    await runInDurableObject(customerStub(uid("reads")), (_, state) => {
      const sql = new Sql(state.storage);
      sql.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)");
      sql.exec("INSERT INTO t VALUES ('a', 1)");
      const transactions = countTransactions(state.storage);
      let runs = 0;
      const v = sql.readsFirst(() => {
        runs++;
        return sql.one<{ v: number }>("SELECT v FROM t WHERE k = 'a'")?.v;
      });
      expect({ v, runs, transactions: transactions.n }).toEqual({ v: 1, runs: 1, transactions: 0 });
    });
  });

  it("stops before the first write and runs again as one transaction: a failure after the write stores nothing", async () => {
    await runInDurableObject(customerStub(uid("reads")), (_, state) => {
      const sql = new Sql(state.storage);
      sql.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)");
      let runs = 0;
      let loads = 0;
      sql.memo("m", () => ++loads);
      expect(() =>
        sql.readsFirst(() => {
          runs++;
          sql.one("SELECT v FROM t WHERE k = 'a'");
          sql.exec("INSERT INTO t VALUES ('a', 1)");
          throw new Error("failed after writing");
        }),
      ).toThrow("failed after writing");
      expect(runs).toBe(2);
      expect(sql.all("SELECT * FROM t")).toEqual([]);
      // The stopped run's memory went with it, as after a rollback.
      expect(sql.memo("m", () => ++loads)).toBe(2);

      const transactions = countTransactions(state.storage);
      const stored = sql.readsFirst(() => {
        // A savepoint is a write too: it must not open outside a transaction.
        sql.transaction(() => sql.exec("INSERT INTO t VALUES ('b', 2)"));
        sql.exec("INSERT INTO t VALUES ('c', 3)");
        return sql.all<{ k: string }>("SELECT k FROM t ORDER BY k").map((r) => r.k);
      });
      expect(stored).toEqual(["b", "c"]);
      expect(transactions.n).toBe(2);
    });
  });

  it("a decision after the usage period ended rolls the period over, and asking again reads only", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    expect(await decide(s)).toMatchObject({ allowed: true, balance: 100 });
    const outcome = await runInDurableObject(customerStub(s.subject), async (instance: CustomerDO, state) => {
      const o = instance as unknown as { sql: Sql };
      // The period ends now: the memoised row and the stored one agree (as after a month went by).
      const e = o.sql.one<{ id: string; seg_end: number }>("SELECT id, seg_end FROM entitlements");
      const end = Date.now() - 1;
      o.sql.exec("UPDATE entitlements SET seg_end = ?", end);
      o.sql.forget("entitlements:");
      const transactions = countTransactions(state.storage);
      const before = o.sql.one<{ n: number }>("SELECT count(*) AS n FROM entitlement_periods WHERE entitlement_id = ?", e!.id)!.n;
      return { before, end, transactions };
    });
    expect(await decide(s)).toMatchObject({ allowed: true, balance: 100 });
    const after = await runInDurableObject(customerStub(s.subject), async (instance: CustomerDO) => {
      const o = instance as unknown as { sql: Sql };
      return o.sql.one<{ n: number; seg_start: number }>("SELECT (SELECT count(*) FROM entitlement_periods) AS n, seg_start FROM entitlements")!;
    });
    expect(after.n).toBe(outcome.before + 1);
    expect(after.seg_start).toBe(outcome.end);
    // The roll-over wrote (one transaction); the next decision reads only (none).
    expect(outcome.transactions.n).toBe(1);
    expect(await valueOk(s)).toMatchObject({ balance: 100 });
    expect(outcome.transactions.n).toBe(1);
  });

  it("a usage query reads without a transaction", async () => {
    const s = await setup({ entitlement: null });
    await ingestOk([usage(s, { tokens: 7 })]);
    const transactions = await runInDurableObject(customerStub(s.subject), (_, state) => countTransactions(state.storage));
    const r = await api("GET", `/api/v1/meters/${s.meter}/query?subject=${s.subject}`);
    expect(r.status, r.text).toBe(200);
    expect(r.body.data.map((row: { value: number }) => row.value)).toEqual([7]);
    expect(transactions.n).toBe(0);
  });
});
