import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Sql } from "../../src/customer/sql";
import { MAX_STRING_BYTES, StatementLimitError } from "../../src/db/guard";
import { customerStub, uid } from "../helpers/api";

// Production caps a string (a bound parameter included) at 2 MB, counted in UTF-8 bytes; the local
// runtime does not (DESIGN invariant 6), so the guard must make such a statement fail here.

describe("bound strings stay under 2 MB in UTF-8", () => {
  it("the guard refuses a bound string over 2 MB in UTF-8 bytes (not characters)", async () => {
    const outcome = await runInDurableObject(customerStub(uid("guard")), (_i, state) => {
      const sql = new Sql(state.storage);
      const fits = sql.one<{ n: number }>("SELECT length(?) AS n", "x".repeat(MAX_STRING_BYTES))?.n;
      try {
        sql.one("SELECT length(?) AS n", "\u4e00".repeat(700_000));
        return { fits, over: "no error" };
      } catch (e) {
        return { fits, over: e instanceof StatementLimitError ? "guard" : String(e) };
      }
    });
    expect(outcome).toEqual({ fits: MAX_STRING_BYTES, over: "guard" });
  });
});
