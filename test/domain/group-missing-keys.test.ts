import { describe, expect, it } from "vitest";
import { foldBuckets } from "../../src/domain/aggregate";
import { groupPredicate } from "../../src/domain/group-filter";

// A stored group that lacks one of the meter's keys (a bucket counted before the key was added, older
// than the retention window re-metering reaches) has null there, also when the key is named like an
// Object.prototype member: reading it off the parsed object gave that member instead.
describe("a group-by key missing from a stored group reads as null", () => {
  const values = { model: "m" };

  it("in filters", () => {
    // Was a TypeError (a 500 on the query, value or check that read such a bucket): [...Object].
    expect(groupPredicate([["constructor", { $gt: "a" }]])(values)).toBe(false);
    // Matched "function toString() { [native code] }".
    expect(groupPredicate([["toString", { $like: "%native%" }]])(values)).toBe(false);
    expect(groupPredicate([["constructor", { $nin: ["x"] }]])(values)).toBe(true);
  });

  it("in the answer's groupBy", () => {
    const bucket = { minute: 0, group_key: JSON.stringify(values), sum: 1, count: 1, min: 1, max: 1, latest_at: 0, latest: 1 };
    const rows = foldBuckets({ aggregation: "SUM", from: 0, to: 60_000, windowSize: null, windowTimeZone: "UTC", groupBy: ["model", "constructor"], filters: [] }, [bucket]);
    expect(rows.map((r) => r.groupBy)).toEqual([{ model: "m", constructor: null }]);
  });
});
