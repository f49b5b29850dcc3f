import { describe, expect, it } from "vitest";
import {
  addPeriods,
  intervalToISO,
  nextPeriodStart,
  type PeriodInterval,
  periodContaining,
  periodStartsBetween,
} from "../../src/domain/periods";

const t = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const isoPeriod = (p: { from: number; to: number }) => ({ from: iso(p.from), to: iso(p.to) });

describe("periodContaining: DAY and WEEK", () => {
  it("keeps the anchor's time of day", () => {
    const p = periodContaining(t("2024-01-01T10:00:00Z"), "DAY", t("2024-03-15T09:59:59.999Z"));
    expect(isoPeriod(p)).toEqual({ from: "2024-03-14T10:00:00.000Z", to: "2024-03-15T10:00:00.000Z" });
  });

  it("puts a boundary instant in the period it starts (from <= at < to)", () => {
    const at = t("2024-03-15T10:00:00Z");
    const p = periodContaining(t("2024-01-01T10:00:00Z"), "DAY", at);
    expect(p.from).toBe(at);
    expect(iso(p.to)).toBe("2024-03-16T10:00:00.000Z");
  });

  it("weeks run from the anchor's weekday", () => {
    // 2024-01-03 is a Wednesday.
    const p = periodContaining(t("2024-01-03T00:00:00Z"), "WEEK", t("2024-01-20T12:00:00Z"));
    expect(isoPeriod(p)).toEqual({ from: "2024-01-17T00:00:00.000Z", to: "2024-01-24T00:00:00.000Z" });
  });

  it("works backwards from an anchor in the future", () => {
    const p = periodContaining(t("2030-01-01T00:00:00Z"), "DAY", t("1990-06-15T23:00:00Z"));
    expect(isoPeriod(p)).toEqual({ from: "1990-06-15T00:00:00.000Z", to: "1990-06-16T00:00:00.000Z" });
  });
});

describe("periodContaining: MONTH from a month-end anchor", () => {
  const anchor = t("2023-01-31T12:00:00Z");

  it("clamps to the month end and goes back to the 31st (no drift to the 28th)", () => {
    const boundaries = [0, 1, 2, 3, 4, 12, 13].map((k) => iso(addPeriods(anchor, "MONTH", k)));
    expect(boundaries).toEqual([
      "2023-01-31T12:00:00.000Z",
      "2023-02-28T12:00:00.000Z",
      "2023-03-31T12:00:00.000Z",
      "2023-04-30T12:00:00.000Z",
      "2023-05-31T12:00:00.000Z",
      "2024-01-31T12:00:00.000Z",
      "2024-02-29T12:00:00.000Z", // leap year
    ]);
  });

  it("finds the February period in common and leap years", () => {
    expect(isoPeriod(periodContaining(anchor, "MONTH", t("2023-02-28T11:59:59Z")))).toEqual({
      from: "2023-01-31T12:00:00.000Z",
      to: "2023-02-28T12:00:00.000Z",
    });
    expect(isoPeriod(periodContaining(anchor, "MONTH", t("2023-03-15T00:00:00Z")))).toEqual({
      from: "2023-02-28T12:00:00.000Z",
      to: "2023-03-31T12:00:00.000Z",
    });
    expect(isoPeriod(periodContaining(anchor, "MONTH", t("2024-02-29T13:00:00Z")))).toEqual({
      from: "2024-02-29T12:00:00.000Z",
      to: "2024-03-31T12:00:00.000Z",
    });
  });

  it("jumps a century in one step", () => {
    const p = periodContaining(t("2000-01-31T00:00:00Z"), "MONTH", t("2099-04-30T00:00:00Z"));
    expect(isoPeriod(p)).toEqual({ from: "2099-04-30T00:00:00.000Z", to: "2099-05-31T00:00:00.000Z" });
  });

  it("goes backwards from a future month-end anchor", () => {
    const p = periodContaining(t("2030-03-31T00:00:00Z"), "MONTH", t("2029-11-15T00:00:00Z"));
    expect(isoPeriod(p)).toEqual({ from: "2029-10-31T00:00:00.000Z", to: "2029-11-30T00:00:00.000Z" });
  });
});

describe("periodContaining: YEAR from Feb 29", () => {
  const anchor = t("2020-02-29T06:00:00Z");

  it("uses Feb 28 in common years and Feb 29 in leap years", () => {
    expect(isoPeriod(periodContaining(anchor, "YEAR", t("2021-03-01T00:00:00Z")))).toEqual({
      from: "2021-02-28T06:00:00.000Z",
      to: "2022-02-28T06:00:00.000Z",
    });
    expect(isoPeriod(periodContaining(anchor, "YEAR", t("2024-02-29T05:59:59Z")))).toEqual({
      from: "2023-02-28T06:00:00.000Z",
      to: "2024-02-29T06:00:00.000Z",
    });
    expect(isoPeriod(periodContaining(anchor, "YEAR", t("2024-02-29T06:00:00Z")))).toEqual({
      from: "2024-02-29T06:00:00.000Z",
      to: "2025-02-28T06:00:00.000Z",
    });
  });

  it("goes backwards before the anchor", () => {
    expect(isoPeriod(periodContaining(anchor, "YEAR", t("2019-05-01T00:00:00Z")))).toEqual({
      from: "2019-02-28T06:00:00.000Z",
      to: "2020-02-29T06:00:00.000Z",
    });
  });
});

describe("a reset mid-period", () => {
  it("starts periods at the reset time once it becomes the anchor", () => {
    const original = t("2024-01-01T00:00:00Z");
    const reset = t("2024-03-10T15:30:00Z");
    expect(isoPeriod(periodContaining(original, "MONTH", reset))).toEqual({
      from: "2024-03-01T00:00:00.000Z",
      to: "2024-04-01T00:00:00.000Z",
    });
    // retainAnchor: false → the reset is the new anchor.
    expect(isoPeriod(periodContaining(reset, "MONTH", reset))).toEqual({
      from: "2024-03-10T15:30:00.000Z",
      to: "2024-04-10T15:30:00.000Z",
    });
    expect(iso(nextPeriodStart(reset, "MONTH", t("2024-04-10T15:30:00Z")))).toBe("2024-05-10T15:30:00.000Z");
  });
});

describe("periodStartsBetween", () => {
  it("lists the resets in (after, until], oldest first", () => {
    const anchor = t("2023-01-31T00:00:00Z");
    expect(periodStartsBetween(anchor, "MONTH", anchor, t("2023-05-01T00:00:00Z")).map(iso)).toEqual([
      "2023-02-28T00:00:00.000Z",
      "2023-03-31T00:00:00.000Z",
      "2023-04-30T00:00:00.000Z",
    ]);
    expect(periodStartsBetween(anchor, "MONTH", anchor, t("2023-02-28T00:00:00Z")).map(iso)).toEqual(["2023-02-28T00:00:00.000Z"]);
    expect(periodStartsBetween(anchor, "DAY", anchor, anchor)).toEqual([]);
    expect(periodStartsBetween(anchor, "DAY", anchor, t("2026-01-01T00:00:00Z"), 3)).toHaveLength(3);
  });
});

describe("invariants over many random anchors", () => {
  // Deterministic LCG so failures reproduce.
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const lo = t("1970-01-01T00:00:00Z");
  const span = t("2100-01-01T00:00:00Z") - lo;

  it("from <= at < to, and from/to are consecutive boundaries of the anchor", () => {
    const intervals: PeriodInterval[] = ["DAY", "WEEK", "MONTH", "YEAR"];
    for (let i = 0; i < 400; i++) {
      const interval = intervals[i % 4] as PeriodInterval;
      // Anchors often on the 28th–31st, where clamping happens.
      const base = new Date(lo + Math.floor(rand() * span));
      const anchor = Date.UTC(base.getUTCFullYear(), base.getUTCMonth(), 28 + Math.floor(rand() * 4), base.getUTCHours());
      const at = lo + Math.floor(rand() * span);
      const p = periodContaining(anchor, interval, at);
      expect(p.from).toBeLessThanOrEqual(at);
      expect(p.to).toBeGreaterThan(at);
      // Independent check of consecutiveness: the boundary after `from` is `to`.
      expect(nextPeriodStart(anchor, interval, p.from)).toBe(p.to);
      expect(periodContaining(anchor, interval, p.to - 1).from).toBe(p.from);
      // Day of month is the anchor's, or the month end when the month is shorter.
      if (interval === "MONTH") {
        const f = new Date(p.from);
        const lastDay = new Date(Date.UTC(f.getUTCFullYear(), f.getUTCMonth() + 1, 0)).getUTCDate();
        expect(f.getUTCDate()).toBe(Math.min(new Date(anchor).getUTCDate(), lastDay));
      }
    }
  });
});

describe("helpers and validation", () => {
  it("renders OpenMeter's intervalISO", () => {
    expect(["DAY", "WEEK", "MONTH", "YEAR"].map((i) => intervalToISO(i as PeriodInterval))).toEqual(["P1D", "P1W", "P1M", "P1Y"]);
  });

  it("rejects non-finite times and fractional k", () => {
    expect(() => periodContaining(Number.NaN, "DAY", 0)).toThrow(RangeError);
    expect(() => periodContaining(0, "MONTH", Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => addPeriods(0, "MONTH", 1.5)).toThrow(RangeError);
  });
});
