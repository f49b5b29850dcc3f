import { describe, expect, it } from "vitest";
import { foldGranules, GRANULE_MS, granuleOf, planWindows } from "../../src/domain/rollup";

const at = (s: string) => Date.parse(s);
const iso = (ms: number) => new Date(ms).toISOString();

describe("granuleOf", () => {
  it("floors to the UTC quarter hour", () => {
    expect(iso(granuleOf(at("2026-03-08T05:14:59.999Z")))).toBe("2026-03-08T05:00:00.000Z");
    expect(iso(granuleOf(at("2026-03-08T05:15:00Z")))).toBe("2026-03-08T05:15:00.000Z");
    expect(Object.is(granuleOf(-0), 0)).toBe(true);
  });
});

describe("foldGranules", () => {
  it("folds minute buckets into 15-minute rows per meter and group, with every aggregate's rule", () => {
    const b = (minute: string, group_key: string, sum: number, count: number, min: number, max: number, latestOffset: number, latest: number) => ({
      meter_id: "m",
      minute: at(minute),
      group_key,
      sum,
      count,
      min,
      max,
      latest_at: at(minute) + latestOffset,
      latest,
    });
    const rows = foldGranules([
      b("2026-01-01T00:00:00Z", "{}", 5, 2, 1, 4, 10, 4),
      b("2026-01-01T00:14:00Z", "{}", 3, 1, 3, 3, 59_000, 3),
      b("2026-01-01T00:15:00Z", "{}", 7, 1, 7, 7, 0, 7),
      b("2026-01-01T00:05:00Z", '{"a":"x"}', 1, 1, 1, 1, 0, 1),
    ]);
    expect(rows).toEqual([
      { meterId: "m", windowStart: at("2026-01-01T00:00:00Z"), groupKey: "{}", sum: 8, count: 3, min: 1, max: 4, latestAt: at("2026-01-01T00:14:59Z"), latest: 3 },
      { meterId: "m", windowStart: at("2026-01-01T00:15:00Z"), groupKey: "{}", sum: 7, count: 1, min: 7, max: 7, latestAt: at("2026-01-01T00:15:00Z"), latest: 7 },
      { meterId: "m", windowStart: at("2026-01-01T00:00:00Z"), groupKey: '{"a":"x"}', sum: 1, count: 1, min: 1, max: 1, latestAt: at("2026-01-01T00:05:00Z"), latest: 1 },
    ]);
  });
});

describe("planWindows", () => {
  const extent = { first: at("2026-03-01T00:00:00Z"), last: at("2026-03-31T23:45:00Z") };

  it("plans DAY windows in zones offset by 30 and 45 minutes on quarter-hour boundaries", () => {
    for (const [tz, start] of [
      ["Asia/Kolkata", "2026-03-09T18:30:00.000Z"],
      ["Asia/Kathmandu", "2026-03-09T18:15:00.000Z"],
      ["Pacific/Chatham", "2026-03-09T10:15:00.000Z"],
    ] as const) {
      const plan = planWindows({ from: at("2026-03-10T00:00:00Z"), to: at("2026-03-12T00:00:00Z"), windowSize: "DAY", timeZone: tz, extent });
      expect(plan.ok).toBe(true);
      if (!plan.ok) return;
      // The first window starts before `from` (as per-subject answers report it) but folds rows from `from` on.
      expect(iso(plan.windows[0]!.start)).toBe(start);
      expect(plan.windows[0]!.from).toBe(at("2026-03-10T00:00:00Z"));
      expect(plan.windows.at(-1)!.to).toBe(at("2026-03-12T00:00:00Z"));
      for (const w of plan.windows) expect([w.from % GRANULE_MS, w.to % GRANULE_MS]).toEqual([0, 0]);
    }
  });

  it("keeps HOUR windows across a DST change (New York, 2026-03-08) and MONTH windows in a half-hour zone", () => {
    const hours = planWindows({ from: at("2026-03-08T05:00:00Z"), to: at("2026-03-08T09:00:00Z"), windowSize: "HOUR", timeZone: "America/New_York", extent });
    expect(hours.ok && hours.windows.map((w) => iso(w.start))).toEqual(["2026-03-08T05:00:00.000Z", "2026-03-08T06:00:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-08T08:00:00.000Z"]);
    const months = planWindows({ from: null, to: at("2026-04-01T00:00:00Z"), windowSize: "MONTH", timeZone: "Asia/Kolkata", extent });
    expect(months.ok && months.windows.map((w) => [iso(w.start), iso(w.from), iso(w.to)])).toEqual([
      ["2026-02-28T18:30:00.000Z", "2026-03-01T00:00:00.000Z", "2026-03-31T18:30:00.000Z"],
      ["2026-03-31T18:30:00.000Z", "2026-03-31T18:30:00.000Z", "2026-04-01T00:00:00.000Z"],
    ]);
  });

  it("plans only where there is data, and nothing without data", () => {
    const plan = planWindows({ from: at("2020-01-01T00:00:00Z"), to: at("2030-01-01T00:00:00Z"), windowSize: "HOUR", timeZone: "UTC", extent });
    expect(plan.ok && plan.windows.length).toBe(31 * 24);
    expect(planWindows({ from: null, to: at("2030-01-01T00:00:00Z"), windowSize: "DAY", timeZone: "UTC", extent: null })).toEqual({ ok: true, windows: [] });
  });

  it("a whole-range answer is one window from `from` (or the first row) to `to`", () => {
    expect(planWindows({ from: null, to: at("2026-04-01T00:00:00Z"), windowSize: null, timeZone: "UTC", extent })).toEqual({
      ok: true,
      windows: [{ start: extent.first, end: at("2026-04-01T00:00:00Z"), from: extent.first, to: at("2026-04-01T00:00:00Z") }],
    });
  });

  it("refuses a window boundary between quarter hours (Monrovia's −0:44:30 before 1972) and MINUTE windows", () => {
    const old = { first: at("1960-01-01T00:00:00Z"), last: at("1960-01-03T00:00:00Z") };
    const plan = planWindows({ from: old.first, to: old.last + GRANULE_MS, windowSize: "DAY", timeZone: "Africa/Monrovia", extent: old });
    expect(plan.ok).toBe(false);
    expect(!plan.ok && plan.reason).toMatch(/DAY window boundary at 1960-01-0\dT00:44:30.000Z in Africa\/Monrovia does not fall on a 15-minute boundary/);
    expect(planWindows({ from: old.first, to: old.last, windowSize: "MINUTE", timeZone: "UTC", extent: old }).ok).toBe(false);
  });

  it("insists on row-aligned from/to (the caller widens them)", () => {
    expect(() => planWindows({ from: at("2026-03-01T00:07:00Z"), to: at("2026-03-02T00:00:00Z"), windowSize: "DAY", timeZone: "UTC", extent })).toThrow(RangeError);
  });
});

