import { describe, expect, it } from "vitest";
import { groupValue, readNumber, readScalarKey, settle } from "../../src/domain/values";

describe("readNumber", () => {
  it.each([
    [42, 42],
    [-1.5, -1.5],
    [1e100, 1e100],
    [-1e100, -1e100],
    ["42", 42],
    ["+42", 42],
    ["-42", -42],
    ["3.25", 3.25],
    ["-0.5", -0.5],
    [".5", 0.5],
    ["5.", 5],
    ["1e3", 1000],
    ["1E3", 1000],
    ["2.5e-3", 0.0025],
    ["-1.5E+2", -150],
    ["007", 7],
    ["1e-400", 0], // underflow rounds to zero, as ParseFloat does
    ["1e100", 1e100],
  ])("%j reads as %j", (input, expected) => {
    expect(readNumber(input)).toEqual({ ok: true, value: expected });
  });

  it("normalises -0 to 0, from numbers and strings", () => {
    for (const input of [-0, "-0", "-0.0", "-0e5", "-1e-400"]) {
      const r = readNumber(input);
      expect(r.ok).toBe(true);
      if (r.ok) expect(Object.is(r.value, 0)).toBe(true);
    }
  });

  it.each([
    [undefined, "value is missing"],
    [null, "value is null"],
    [Number.NaN, "value is not finite"],
    [Number.POSITIVE_INFINITY, "value is not finite"],
    [Number.NEGATIVE_INFINITY, "value is not finite"],
    ["1e999", 'value is not finite: "1e999"'],
    ["-1e999", 'value is not finite: "-1e999"'],
    // Past MAX_VALUE by more than half an ulp: ParseFloat's ErrRange, not a rounding.
    ["1.7976931348623159e308", 'value is not finite: "1.7976931348623159e308"'],
    // Finite, but sums of such values could overflow to Infinity (MAX_ABS_VALUE).
    [Number.MAX_VALUE, `value is beyond ±1e+100: ${Number.MAX_VALUE}`],
    [-1e101, "value is beyond ±1e+100: -1e+101"],
    ["1.7976931348623157e308", 'value is beyond ±1e+100: "1.7976931348623157e308"'],
    ["", 'value is not a number: ""'],
    ["   ", 'value is not a number: "   "'],
    [" 1", 'value is not a number: " 1"'],
    ["1 ", 'value is not a number: "1 "'],
    ["abc", 'value is not a number: "abc"'],
    ["12abc", 'value is not a number: "12abc"'],
    ["NaN", 'value is not a number: "NaN"'],
    ["Infinity", 'value is not a number: "Infinity"'],
    ["-Infinity", 'value is not a number: "-Infinity"'],
    ["inf", 'value is not a number: "inf"'],
    ["0x10", 'value is not a number: "0x10"'],
    ["0b1", 'value is not a number: "0b1"'],
    ["1_000", 'value is not a number: "1_000"'],
    ["1,5", 'value is not a number: "1,5"'],
    [".", 'value is not a number: "."'],
    ["+", 'value is not a number: "+"'],
    ["e5", 'value is not a number: "e5"'],
    ["1e", 'value is not a number: "1e"'],
    ["1e+", 'value is not a number: "1e+"'],
    ["--1", 'value is not a number: "--1"'],
    [true, "value is not a number: true"],
    [false, "value is not a number: false"],
    [{ n: 1 }, "value is not a number: object"],
    [[1], "value is not a number: array"],
  ])("%j is rejected: %s", (input, expected) => {
    expect(readNumber(input)).toEqual({ ok: false, reason: expected });
  });

  it("truncates a long string in the reason", () => {
    const r = readNumber("x".repeat(10_000));
    expect(r).toEqual({ ok: false, reason: `value is not a number: "${"x".repeat(40)}…"` });
  });

  it("stays linear on a long run of digits followed by garbage", () => {
    const r = readNumber(`${"1".repeat(100_000)}x`);
    expect(r.ok).toBe(false);
  });
});

describe("readScalarKey", () => {
  it.each([
    ["user-1", "user-1"],
    ["", ""],
    [1, "1"],
    [1.5, "1.5"],
    [-0, "0"],
    [1e21, "1e+21"],
    [true, "true"],
    [false, "false"],
  ])("%j keys as %j", (input, expected) => {
    expect(readScalarKey(input)).toEqual({ ok: true, value: expected });
  });

  it("gives a number and its string form the same key", () => {
    expect(readScalarKey(42)).toEqual(readScalarKey("42"));
    expect(readScalarKey(true)).toEqual(readScalarKey("true"));
  });

  it("keeps strings that differ only in format apart", () => {
    expect(readScalarKey("1.0")).toEqual({ ok: true, value: "1.0" });
    expect(readScalarKey(1.0)).toEqual({ ok: true, value: "1" });
  });

  it.each([
    [undefined, "value is missing"],
    [null, "value is null"],
    [Number.NaN, "value is not finite"],
    [Number.POSITIVE_INFINITY, "value is not finite"],
    [{ id: 1 }, "value is not a string, number or boolean: object"],
    [[1, 2], "value is not a string, number or boolean: array"],
  ])("%j is rejected: %s", (input, expected) => {
    expect(readScalarKey(input)).toEqual({ ok: false, reason: expected });
  });
});

describe("groupValue", () => {
  it.each([
    ["gpt-4", "gpt-4"],
    ["", ""],
    [3, "3"],
    [2.5, "2.5"],
    [-0, "0"],
    [true, "true"],
    [false, "false"],
  ])("%j groups as %j", (input, expected) => {
    expect(groupValue(input)).toBe(expected);
  });

  it.each([[undefined], [null], [{ a: 1 }], [[1]], [Number.NaN], [Number.POSITIVE_INFINITY]])(
    "%j groups as null",
    (input) => {
      expect(groupValue(input)).toBeNull();
    },
  );
});

describe("settle", () => {
  it("keeps fractions to 15 significant digits and integers as they are", () => {
    expect(settle(0.1 + 0.2)).toBe(0.3);
    expect(settle(1 - 0.6000000000000001)).toBe(0.4);
    expect(settle(0.9999999999999999)).toBe(1);
    expect(settle(2 ** 53 - 1)).toBe(2 ** 53 - 1);
    expect(settle(1234567890123456)).toBe(1234567890123456);
    expect(settle(-0.30000000000000004)).toBe(-0.3);
    expect(settle(1.5e-300)).toBe(1.5e-300);
  });
});
