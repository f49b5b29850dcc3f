import { describe, expect, it } from "vitest";
import { iso, parseRfc3339 } from "../../src/domain/time";

// parseRfc3339 remembers the last minute it read (the events of a batch share it); these check that
// the remembered minute never changes an answer, whatever order the strings come in.
describe("parseRfc3339", () => {
  const cases: [string, number | null][] = [
    ["2026-11-27T03:40:00Z", Date.UTC(2026, 10, 27, 3, 40, 0)],
    ["2026-11-27T03:40:59.999Z", Date.UTC(2026, 10, 27, 3, 40, 59, 999)],
    ["2026-11-27T03:40:60Z", null],
    ["2026-11-27T03:40:5xZ", null],
    ["2026-11-27t03:40:07.5z", Date.UTC(2026, 10, 27, 3, 40, 7, 500)],
    ["2026-11-27T03:40:07.123456789Z", Date.UTC(2026, 10, 27, 3, 40, 7, 123)],
    ["2026-11-27T03:41:01Z", Date.UTC(2026, 10, 27, 3, 41, 1)],
    ["2026-11-27T03:40:07+05:30", Date.UTC(2026, 10, 26, 22, 10, 7)],
    ["2026-02-29T00:00:00Z", null],
    ["2024-02-29T23:59:59Z", Date.UTC(2024, 1, 29, 23, 59, 59)],
    ["2026-11-27T24:00:00Z", null],
    ["2026-11-27T03:60:00Z", null],
    ["0042-01-01T00:00:00Z", new Date("0042-01-01T00:00:00Z").getTime()],
  ];
  it("answers the same in any order (the minute memo is invisible)", () => {
    const orders = [cases, [...cases].reverse(), cases.flatMap((c) => [c, c]), cases.flatMap((c) => [cases[0]!, c])];
    for (const order of orders) for (const [s, v] of order) expect(parseRfc3339(s), s).toBe(v);
  });

  it("a valid minute followed by an invalid second or a different day is read in full", () => {
    expect(parseRfc3339("2026-11-27T03:40:00Z")).toBe(Date.UTC(2026, 10, 27, 3, 40));
    expect(parseRfc3339("2026-11-27T03:40:99Z")).toBeNull();
    expect(parseRfc3339("2026-11-28T03:40:01Z")).toBe(Date.UTC(2026, 10, 28, 3, 40, 1));
    expect(parseRfc3339("2026-11-27T03:40:01.Z")).toBeNull();
  });
});

describe("iso", () => {
  it("writes every instant with a four-digit year: past 9999 (or before 0000) it shows the last (first) representable one", () => {
    expect(iso(Date.UTC(2026, 10, 27))).toBe("2026-11-27T00:00:00.000Z");
    expect(iso(Date.parse("9999-12-31T23:59:59.999Z"))).toBe("9999-12-31T23:59:59.999Z");
    expect(iso(Date.parse("9999-12-31T23:59:59.999Z") + 1)).toBe("9999-12-31T23:59:59.999Z");
    expect(iso(Date.parse("0000-01-01T00:00:00.000Z") - 86_400_000)).toBe("0000-01-01T00:00:00.000Z");
  });
});
