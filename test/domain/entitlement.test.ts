import type { GroupFilters } from "../../src/domain/group-filter";
import { describe, expect, it } from "vitest";
import { expiresAt, isBalanceAggregation, matchesFilters, meteredHasAccess, truncMinute } from "../../src/domain/entitlement";
import { nextPeriodStart, periodContaining } from "../../src/domain/periods";

const t = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe("grant expiration (OpenMeter: effectiveAt + count × duration, Go AddDate)", () => {
  it("adds fixed durations", () => {
    const at = t("2024-03-10T12:34:00Z");
    expect(iso(expiresAt(at, { duration: "HOUR", count: 5 }))).toBe("2024-03-10T17:34:00.000Z");
    expect(iso(expiresAt(at, { duration: "DAY", count: 30 }))).toBe("2024-04-09T12:34:00.000Z");
    expect(iso(expiresAt(at, { duration: "WEEK", count: 2 }))).toBe("2024-03-24T12:34:00.000Z");
  });

  it("overflows months like Go's AddDate (no clamping) and handles leap years", () => {
    expect(iso(expiresAt(t("2023-01-31T00:00:00Z"), { duration: "MONTH", count: 1 }))).toBe("2023-03-03T00:00:00.000Z");
    expect(iso(expiresAt(t("2024-01-31T00:00:00Z"), { duration: "MONTH", count: 1 }))).toBe("2024-03-02T00:00:00.000Z");
    expect(iso(expiresAt(t("2024-02-29T08:00:00Z"), { duration: "YEAR", count: 1 }))).toBe("2025-03-01T08:00:00.000Z");
    expect(iso(expiresAt(t("2024-02-29T08:00:00Z"), { duration: "YEAR", count: 4 }))).toBe("2028-02-29T08:00:00.000Z");
    expect(iso(expiresAt(t("2024-11-15T00:00:00Z"), { duration: "MONTH", count: 3 }))).toBe("2025-02-15T00:00:00.000Z");
  });
});

describe("group filters", () => {
  it("pass a bucket only when every filtered key has exactly that value", () => {
    expect(matchesFilters('{"model":"big","region":"eu"}', { filters: { model: "big" } })).toBe(true);
    expect(matchesFilters('{"model":"small","region":"eu"}', { filters: { model: "big" } })).toBe(false);
    expect(matchesFilters('{"model":null}', { filters: { model: "big" } })).toBe(false);
    expect(matchesFilters("{}", { filters: { model: "big" } })).toBe(false);
    expect(matchesFilters("{}", { filters: {} })).toBe(true);
    expect(matchesFilters('{"model":"big","region":"eu"}', { filters: { model: "big", region: "us" } })).toBe(false);
  });

  it("caches per group key", () => {
    const cache = new Map<string, boolean>();
    expect(matchesFilters('{"a":"1"}', { filters: { a: "1" } }, cache)).toBe(true);
    expect(cache.get('{"a":"1"}')).toBe(true);
  });

  it("apply advancedMeterGroupByFilters too: both kinds must hold", () => {
    const m = { filters: { region: "eu" }, advancedFilters: [["model", { $in: ["big", "huge"] }]] as GroupFilters };
    expect(matchesFilters('{"model":"big","region":"eu"}', m)).toBe(true);
    expect(matchesFilters('{"model":"small","region":"eu"}', m)).toBe(false);
    expect(matchesFilters('{"model":"huge","region":"us"}', m)).toBe(false);
    expect(matchesFilters('{"model":null,"region":"eu"}', { filters: {}, advancedFilters: [["model", { $ne: "big" }]] as GroupFilters })).toBe(true);
  });
});

describe("rules", () => {
  it("truncates to the minute", () => {
    expect(iso(truncMinute(t("2024-01-01T10:20:59.999Z")))).toBe("2024-01-01T10:20:00.000Z");
    expect(iso(truncMinute(t("2024-01-01T10:20:00.000Z")))).toBe("2024-01-01T10:20:00.000Z");
  });

  it("has access with a soft limit always, with a hard one while balance > 0", () => {
    expect(meteredHasAccess(0, true)).toBe(true);
    expect(meteredHasAccess(0, false)).toBe(false);
    expect(meteredHasAccess(0.5, false)).toBe(true);
  });

  it("lets only SUM, COUNT, UNIQUE_COUNT and LATEST meters back a balance", () => {
    expect(["SUM", "COUNT", "UNIQUE_COUNT", "LATEST", "AVG", "MIN", "MAX"].filter((a) => isBalanceAggregation(a as never))).toEqual(["SUM", "COUNT", "UNIQUE_COUNT", "LATEST"]);
  });
});

describe("a reset mid-period", () => {
  const anchor = t("2024-01-31T00:00:00Z");
  const reset = t("2024-03-10T15:30:00Z");

  it("retaining the anchor: the new segment ends where the anchor's period ends", () => {
    const p = periodContaining(anchor, "MONTH", reset);
    expect([iso(p.from), iso(p.to)]).toEqual(["2024-02-29T00:00:00.000Z", "2024-03-31T00:00:00.000Z"]);
    expect(iso(nextPeriodStart(anchor, "MONTH", reset))).toBe("2024-03-31T00:00:00.000Z");
  });

  it("moving the anchor: periods then recur from the reset", () => {
    expect(iso(nextPeriodStart(reset, "MONTH", reset))).toBe("2024-04-10T15:30:00.000Z");
    expect(iso(nextPeriodStart(reset, "WEEK", reset))).toBe("2024-03-17T15:30:00.000Z");
    expect(iso(nextPeriodStart(reset, "YEAR", reset))).toBe("2025-03-10T15:30:00.000Z");
  });
});
