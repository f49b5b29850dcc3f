import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { Sql } from "../../src/customer/sql";
import { guardD1, MAX_BOUND_PARAMETERS, MAX_STATEMENT_BYTES, StatementLimitError } from "../../src/db/guard";
import { MINUTE, createMeter, customerStub, event, ingestOk, iso, listEvents, rows, total, uid } from "../helpers/api";

// Production refuses > 100 bound parameters and > 100 KB of statement text (DESIGN invariant 6);
// the local runtime does not, so the guard must make such a statement fail here.
const params = (n: number) => Array.from({ length: n }, (_, i) => i);
const selectOf = (n: number) => `SELECT ${params(n).map(() => "?").join(", ")}`;
/** A valid statement of exactly `bytes` UTF-8 bytes, padded with an ASCII comment. */
const longSql = (bytes: number) => {
  const head = "SELECT 1 -- ";
  return head + "x".repeat(bytes - head.length);
};
/** A statement under the limit in characters but over it in UTF-8 bytes (each "é" is 2 bytes). */
const multiByteSql = () => `SELECT '${"é".repeat(60_000)}'`;

const inDO = <R>(fn: (sql: Sql) => R) => runInDurableObject(customerStub(uid("guard")), (_i, state) => fn(new Sql(state.storage)));

describe("the Durable Object's Sql wrapper", () => {
  it("runs a statement at the limits", async () => {
    const ok = await inDO((sql) => [sql.all(selectOf(MAX_BOUND_PARAMETERS), ...params(MAX_BOUND_PARAMETERS)).length, sql.all(longSql(MAX_STATEMENT_BYTES)).length]);
    expect(ok).toEqual([1, 1]);
  });

  it("throws for 101 bound parameters", async () => {
    const err = await inDO((sql) => {
      try {
        sql.exec(selectOf(101), ...params(101));
        return null;
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(StatementLimitError);
    expect(String((err as Error).message)).toMatch(/101 parameters/);
  });

  it("throws for more than 100 KB of SQL text", async () => {
    const thrown = await inDO((sql) => {
      try {
        sql.exec(longSql(MAX_STATEMENT_BYTES + 1));
        return "no error";
      } catch (e) {
        return e instanceof StatementLimitError ? "guard" : String(e);
      }
    });
    expect(thrown).toBe("guard");
  });

  // The limit is in bytes. The guard counts UTF-16 code units, so this one passes the guard and is
  // refused by the runtime's own SQLite limit instead: either way it must fail locally.
  it("a statement over 100 KB in UTF-8 bytes (but not in characters) fails locally", async () => {
    const sqlText = multiByteSql();
    expect(sqlText.length).toBeLessThan(MAX_STATEMENT_BYTES);
    expect(new TextEncoder().encode(sqlText).byteLength).toBeGreaterThan(MAX_STATEMENT_BYTES);
    const outcome = await inDO((sql) => {
      try {
        sql.exec(sqlText);
        return "no error";
      } catch (e) {
        return e instanceof StatementLimitError ? "guard" : String(e);
      }
    });
    expect(outcome).toMatch(/^guard$|too long|TOOBIG/);
  });
});

describe("what a Durable Object's SQLite refuses", () => {
  // docs/performance.md (duplicates): the page cache cannot be tuned from code.
  it("PRAGMA cache_size, read or set, is not authorised", async () => {
    const errors = await inDO((sql) =>
      ["PRAGMA cache_size", "PRAGMA cache_size = -20000"].map((q) => {
        try {
          sql.all(q);
          return "ran";
        } catch (e) {
          return String(e);
        }
      }),
    );
    expect(errors).toEqual([expect.stringContaining("SQLITE_AUTH"), expect.stringContaining("SQLITE_AUTH")]);
  });
});

describe("the guarded D1 binding", () => {
  const db = guardD1(env.DB);

  it("runs statements at the limits, alone and in a batch", async () => {
    const row = await db.prepare(selectOf(MAX_BOUND_PARAMETERS)).bind(...params(MAX_BOUND_PARAMETERS)).raw();
    expect(row[0]).toHaveLength(MAX_BOUND_PARAMETERS);
    const [a, b] = await db.batch([db.prepare("SELECT ? AS v").bind(1), db.prepare(longSql(MAX_STATEMENT_BYTES))]);
    expect(a!.results).toEqual([{ v: 1 }]);
    expect(b!.results).toHaveLength(1);
  });

  it("throws for 101 bound parameters", () => {
    expect(() => db.prepare(selectOf(101)).bind(...params(101))).toThrow(StatementLimitError);
  });

  it("throws for more than 100 KB of SQL text", () => {
    expect(() => db.prepare(longSql(MAX_STATEMENT_BYTES + 1))).toThrow(StatementLimitError);
  });

  it("a statement over 100 KB in UTF-8 bytes (but not in characters) fails locally", async () => {
    await expect(Promise.resolve().then(() => db.prepare(multiByteSql()).first())).rejects.toThrow(/statement is|too long|TOOBIG/);
  });
});

describe("ingest stays inside the limits", () => {
  const TYPE = "guard_big";
  const SUM = "guard_bytes";
  const UNIQUE = "guard_requests";

  beforeAll(async () => {
    await createMeter({ slug: SUM, eventType: TYPE, aggregation: "SUM", valueProperty: "$.bytes", groupBy: { route: "$.route" } });
    await createMeter({ slug: UNIQUE, eventType: TYPE, aggregation: "UNIQUE_COUNT", valueProperty: "$.request" });
  });

  it("a 1,000-event batch with large payloads, 1,000 buckets and 1,000 distinct values goes through", async () => {
    const subject = uid("bulk");
    const start = Date.now() - 1000 * MINUTE;
    const batch = Array.from({ length: 1000 }, (_, i) =>
      event({ type: TYPE, subject, time: iso(start + i * MINUTE), data: { bytes: i, route: `/r/${i}`, request: `req-${i}`, pad: "p".repeat(700) } }),
    );
    const body = JSON.stringify(batch);
    expect(body.length).toBeGreaterThan(900_000);
    expect(body.length).toBeLessThan(1024 * 1024);

    expect(await ingestOk(batch)).toEqual({ accepted: 1000, duplicates: 0, rejected: [] });
    expect(await total(SUM, subject)).toBe((999 * 1000) / 2);
    expect(await total(UNIQUE, subject)).toBe(1000);
    expect(await rows(SUM, { subject, groupBy: "route" })).toHaveLength(1000);
    expect(await rows(SUM, { subject, windowSize: "MINUTE" })).toHaveLength(1000);

    // The dedupe check of the same 1,000 events is chunked too.
    expect(await ingestOk(batch)).toEqual({ accepted: 0, duplicates: 1000, rejected: [] });
    expect(await listEvents(subject, undefined, "&limit=100")).toHaveLength(100);
  });
});
