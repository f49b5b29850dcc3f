import { describe, expect, it } from "vitest";
import { classifyResponse, MAX_ATTEMPTS, nextAttemptAt, parseRetryAfter } from "../../src/domain/backoff";

const S = 1000;
const H = 3600 * S;
const T0 = Date.parse("2025-01-01T00:00:00Z");

/** "hh:mm:ss" since T0, as in the spec's example schedule table. */
function sinceStart(ms: number): string {
  const s = Math.round((ms - T0) / S);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

describe("nextAttemptAt", () => {
  it("follows the Standard Webhooks example schedule, then gives up", () => {
    const times: string[] = [];
    let attempts = 0;
    let last = T0;
    for (;;) {
      const next = nextAttemptAt(attempts, last);
      if (next === null) break;
      times.push(sinceStart(next));
      attempts++;
      last = next; // the attempt is made (and fails) instantly
    }
    expect(times).toEqual([
      "00:00:00",
      "00:00:05",
      "00:05:05",
      "00:35:05",
      "02:35:05",
      "07:35:05",
      "17:35:05",
      "31:35:05",
      "51:35:05",
      "75:35:05",
    ]);
    expect(attempts).toBe(MAX_ATTEMPTS);
    expect(nextAttemptAt(10, last)).toBeNull();
  });

  it("counts the delay from the previous attempt", () => {
    expect(nextAttemptAt(3, T0 + 17 * S)).toBe(T0 + 17 * S + 30 * 60 * S);
  });

  it("honours a Retry-After in seconds only when it asks for later than the schedule", () => {
    expect(nextAttemptAt(1, T0, "120")).toBe(T0 + 120 * S); // schedule says 5 s
    expect(nextAttemptAt(1, T0, "2")).toBe(T0 + 5 * S);
    expect(nextAttemptAt(4, T0, "60")).toBe(T0 + 2 * H);
  });

  it("honours a Retry-After HTTP-date", () => {
    expect(nextAttemptAt(2, T0, "Wed, 01 Jan 2025 01:00:00 GMT")).toBe(T0 + H);
    // A date in the past does not bring the attempt forward.
    expect(nextAttemptAt(2, T0, "Tue, 31 Dec 2024 23:00:00 GMT")).toBe(T0 + 5 * 60 * S);
  });

  it("caps Retry-After at 24 h and never adds attempts", () => {
    expect(nextAttemptAt(1, T0, "172800")).toBe(T0 + 24 * H);
    expect(nextAttemptAt(1, T0, "Fri, 10 Jan 2025 00:00:00 GMT")).toBe(T0 + 24 * H);
    expect(nextAttemptAt(10, T0, "60")).toBeNull();
  });

  it("scales the schedule's delays by WEBHOOK_RETRY_SCALE (tests only), but neither Retry-After nor the attempt count", () => {
    expect(nextAttemptAt(1, T0, null, 0.001)).toBe(T0 + 5);
    expect(nextAttemptAt(2, T0, null, 0.001)).toBe(T0 + 300);
    expect(nextAttemptAt(9, T0, null, 0.001)).toBe(T0 + 24 * 3600);
    expect(nextAttemptAt(2, T0, "2", 0.001)).toBe(T0 + 2 * S);
    expect(nextAttemptAt(10, T0, null, 0.001)).toBeNull();
    expect(nextAttemptAt(2, T0, null)).toBe(T0 + 5 * 60 * S); // the default is the spec's schedule
  });

  it("ignores a malformed Retry-After and a first attempt is always immediate", () => {
    expect(nextAttemptAt(1, T0, "soon")).toBe(T0 + 5 * S);
    expect(nextAttemptAt(1, T0, "")).toBe(T0 + 5 * S);
    expect(nextAttemptAt(0, T0, "3600")).toBe(T0);
  });

  it("rejects nonsense attempt counts", () => {
    expect(() => nextAttemptAt(-1, T0)).toThrow(RangeError);
    expect(() => nextAttemptAt(1.5, T0)).toThrow(RangeError);
  });
});

describe("parseRetryAfter", () => {
  it("reads delta-seconds and dates, rejects the rest", () => {
    expect(parseRetryAfter(" 30 ", T0)).toBe(T0 + 30 * S);
    expect(parseRetryAfter("0", T0)).toBe(T0);
    expect(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", T0)).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
    expect(parseRetryAfter("-5", T0)).toBeNull();
    expect(parseRetryAfter("1.5", T0)).toBeNull();
    expect(parseRetryAfter("tomorrow-ish", T0)).toBeNull();
    expect(parseRetryAfter(null, T0)).toBeNull();
    expect(parseRetryAfter(undefined, T0)).toBeNull();
  });
});

describe("classifyResponse", () => {
  it("maps statuses per the spec and our policy", () => {
    const cases: Array<[number | "timeout" | "network", string]> = [
      [200, "success"],
      [204, "success"],
      [299, "success"],
      [301, "fail"],
      [302, "fail"],
      [304, "fail"],
      [400, "fail"],
      [401, "fail"],
      [404, "fail"],
      [408, "retry"],
      [410, "disable"],
      [413, "fail"],
      [429, "retry"],
      [500, "retry"],
      [502, "retry"],
      [503, "retry"],
      [504, "retry"],
      [599, "retry"],
      ["timeout", "retry"],
      ["network", "retry"],
    ];
    expect(cases.map(([s]) => [s, classifyResponse(s)])).toEqual(cases);
  });
});
