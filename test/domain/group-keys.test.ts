import { describe, expect, it } from "vitest";
import { compileMeter, groupKeyOf, type CompiledMeter } from "../../src/domain/metering";
import type { MeterDef } from "../../src/domain/meter";

// groupKeyOf remembers the key of each tuple of group values; the memo must never hand one tuple
// another tuple's key, whatever the values contain.
describe("groupKeyOf", () => {
  const meter = compileMeter({ id: "m1", slug: "m", eventType: "t", aggregation: "COUNT", valueProperty: null, groupBy: { a: "$.a", b: "$.b" }, eventFrom: null } as unknown as MeterDef) as CompiledMeter;

  it("gives each tuple its own key, in any order, values with separators and nulls included", () => {
    const tuples: Record<string, unknown>[] = [
      { a: "x\u0002y", b: "z" },
      { a: "x", b: "y\u0002z" },
      { a: "1:x", b: null },
      { a: "1", b: "x" },
      { a: null, b: "-" },
      { a: "-", b: null },
      { a: 5, b: true },
      {},
    ];
    const fresh = (d: Record<string, unknown>) => JSON.stringify({ a: d.a == null ? null : String(d.a), b: d.b == null ? null : String(d.b) });
    for (const round of [tuples, [...tuples].reverse(), tuples]) {
      for (const d of round) expect(groupKeyOf(meter, d), JSON.stringify(d)).toBe(fresh(d));
    }
    expect(groupKeyOf(meter, null)).toBe('{"a":null,"b":null}');
  });

  it("remembers short tuples only: long values are keyed afresh each time, never held", () => {
    const m = compileMeter({ id: "m2", slug: "m", eventType: "t", aggregation: "COUNT", valueProperty: null, groupBy: { a: "$.a" }, eventFrom: null } as unknown as MeterDef) as CompiledMeter;
    const long = "v".repeat(5000);
    expect(groupKeyOf(m, { a: long })).toBe(JSON.stringify({ a: long }));
    expect(groupKeyOf(m, { a: "gpt-4" })).toBe('{"a":"gpt-4"}');
    expect([...(m.keys?.values() ?? [])]).toEqual(['{"a":"gpt-4"}']);
  });
});
