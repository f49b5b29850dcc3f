import { describe, expect, it } from "vitest";
import { RecentIds } from "../../src/customer/recent-ids";

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(10, "0")}`);
const named = (f: RecentIds, source: string, list: string[]) => {
  const h = RecentIds.hashes(source, list);
  return list.filter((_, k) => f.mayHave(h, k)).length;
};

describe("RecentIds (the filter that picks which ids of a mixed batch to look up)", () => {
  it("names every id it was given, within what it remembers", () => {
    const f = new RecentIds();
    const stored = ids("a", 100_000);
    f.add(RecentIds.hashes("src", stored));
    expect(named(f, "src", stored)).toBe(stored.length);
  });

  it("names few ids it was not given (false positives ≈3% when a generation is full), and tells sources apart", () => {
    const f = new RecentIds();
    f.add(RecentIds.hashes("src", ids("a", 1 << 17)));
    const others = ids("b", 20_000);
    expect(named(f, "src", others)).toBeLessThan(others.length * 0.05);
    expect(named(f, "other", ids("a", 20_000))).toBeLessThan(20_000 * 0.05);
    // (source, id) pairs whose concatenations are equal are still different events.
    const g = new RecentIds();
    g.add(RecentIds.hashes("ab", ["c"]));
    expect(named(g, "a", ["bc"])).toBe(0);
  });

  it("forgets the oldest generation, never the newest one", () => {
    const f = new RecentIds();
    const first = ids("first", 1 << 17);
    const second = ids("second", 1 << 17);
    const third = ids("third", 1000);
    f.add(RecentIds.hashes("s", first));
    f.add(RecentIds.hashes("s", second));
    expect(named(f, "s", first)).toBe(first.length); // the older generation still answers
    f.add(RecentIds.hashes("s", third));
    expect(named(f, "s", first)).toBeLessThan(first.length * 0.05); // dropped, up to false positives
    expect(named(f, "s", second)).toBe(second.length);
    expect(named(f, "s", third)).toBe(third.length);
  });
});
