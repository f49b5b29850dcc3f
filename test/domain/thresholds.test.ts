import { describe, expect, it } from "vitest";
import {
  isThresholdReached,
  mostAdvancedReached,
  newlyCrossedThresholds,
  type Threshold,
  thresholdKey,
  thresholdKind,
} from "../../src/domain/thresholds";

const none = new Set<string>();
const pct = (value: number): Threshold => ({ type: "usage_percentage", value });
const used = (value: number): Threshold => ({ type: "usage_value", value });
const bal = (value: number): Threshold => ({ type: "balance_value", value });

describe("thresholdKey and kinds", () => {
  it("gives legacy types the key of their current name", () => {
    expect(thresholdKey({ type: "NUMBER", value: 100 })).toBe("usage_value:100");
    expect(thresholdKey({ type: "PERCENT", value: 80 })).toBe("usage_percentage:80");
    expect(thresholdKey(bal(12.5))).toBe("balance_value:12.5");
    expect(thresholdKey(used(-0))).toBe("usage_value:0");
    expect(thresholdKind({ type: "PERCENT", value: 1 })).toBe("usage");
    expect(thresholdKind(bal(1))).toBe("balance");
  });
});

describe("usage_percentage base", () => {
  it("is the granted amount available in the period, not usage + balance", () => {
    // 100 granted, 110 used: balance 0, overage 10.
    const v = { usage: 110, balance: 0, totalGranted: 100 };
    expect(isThresholdReached(pct(110), v)).toBe(true);
    // With usage + balance (= 110) as the base, 110% would need 121 of usage.
    expect(isThresholdReached(pct(111), v)).toBe(false);
    expect(isThresholdReached(pct(90), { usage: 90, balance: 10, totalGranted: 100 })).toBe(true);
    expect(isThresholdReached(pct(91), { usage: 90, balance: 10, totalGranted: 100 })).toBe(false);
  });

  it("is inclusive: exactly 100% used reaches 100%", () => {
    expect(isThresholdReached(pct(100), { usage: 35, balance: 0, totalGranted: 35 })).toBe(true);
    expect(isThresholdReached(used(35), { usage: 35, balance: 0, totalGranted: 35 })).toBe(true);
  });

  it("skips percentages while nothing is granted", () => {
    expect(isThresholdReached(pct(50), { usage: 100, balance: 0, totalGranted: 0 })).toBe(false);
    expect(isThresholdReached(used(50), { usage: 100, balance: 0, totalGranted: 0 })).toBe(true);
  });

  it("treats a 0 usage threshold as 'first usage'", () => {
    expect(isThresholdReached(used(0), { usage: 0, balance: 10, totalGranted: 10 })).toBe(false);
    expect(isThresholdReached(used(0), { usage: 0.5, balance: 9.5, totalGranted: 10 })).toBe(true);
    expect(isThresholdReached(pct(0), { usage: 0, balance: 10, totalGranted: 10 })).toBe(false);
  });
});

describe("balance_value", () => {
  it("fires downward: balance at or below the value", () => {
    expect(isThresholdReached(bal(20), { usage: 80, balance: 20, totalGranted: 100 })).toBe(true);
    expect(isThresholdReached(bal(20), { usage: 79, balance: 21, totalGranted: 100 })).toBe(false);
    expect(isThresholdReached(bal(0), { usage: 100, balance: 0, totalGranted: 100 })).toBe(true);
  });

  it("is silent for an empty entitlement, but not once usage arrives without grants", () => {
    expect(isThresholdReached(bal(10), { usage: 0, balance: 0, totalGranted: 0 })).toBe(false);
    expect(isThresholdReached(bal(10), { usage: 5, balance: 0, totalGranted: 0 })).toBe(true);
  });
});

describe("most advanced threshold", () => {
  it("picks the highest usage level, comparing percentages and values on one axis", () => {
    const v = { usage: 25, balance: 5, totalGranted: 30 };
    // 20 < 24 (= 80% of 30) <= 25 < 30
    expect(mostAdvancedReached([used(20), pct(80), used(30), bal(10)], v)).toEqual({ usage: pct(80), balance: bal(10) });
  });

  it("prefers the percentage when a value and a percentage stand for the same amount (as OpenMeter)", () => {
    const v = { usage: 16, balance: 14, totalGranted: 30 };
    expect(mostAdvancedReached([pct(50), used(15)], v).usage).toEqual(pct(50));
    expect(mostAdvancedReached([used(15), pct(50)], v).usage).toEqual(pct(50));
  });

  it("picks the lowest reached balance threshold", () => {
    const v = { usage: 30, balance: 0, totalGranted: 30 };
    expect(mostAdvancedReached([bal(20), bal(0), bal(10)], v).balance).toEqual(bal(0));
  });
});

describe("newlyCrossedThresholds", () => {
  const rule = [pct(50), pct(80), pct(100)];

  it("reports only the most advanced of several thresholds one batch crosses", () => {
    const before = { usage: 40, balance: 60, totalGranted: 100 };
    const after = { usage: 85, balance: 15, totalGranted: 100 };
    expect(newlyCrossedThresholds(rule, before, after, none)).toEqual({ usage: pct(80), balance: null });
  });

  it("does not fall back to a lower threshold when the most advanced one already fired", () => {
    const before = { usage: 40, balance: 60, totalGranted: 100 };
    const after = { usage: 85, balance: 15, totalGranted: 100 };
    expect(newlyCrossedThresholds(rule, before, after, new Set(["usage_percentage:80"]))).toEqual({ usage: null, balance: null });
  });

  it("is quiet when the threshold was already reached before the transaction", () => {
    const before = { usage: 82, balance: 18, totalGranted: 100 };
    const after = { usage: 90, balance: 10, totalGranted: 100 };
    expect(newlyCrossedThresholds(rule, before, after, none)).toEqual({ usage: null, balance: null });
    // From scratch (no previous value), the reached threshold is reported.
    expect(newlyCrossedThresholds(rule, null, after, none).usage).toEqual(pct(80));
  });

  it("fires again when the same threshold is reached anew after a grant raised the base", () => {
    const fired = new Set(["usage_percentage:80"]);
    const topUp = { usage: 95, balance: 105, totalGranted: 200 }; // 80% is now 160
    expect(newlyCrossedThresholds(rule, { usage: 90, balance: 10, totalGranted: 100 }, topUp, fired).usage).toBeNull();
    const later = { usage: 101, balance: 99, totalGranted: 200 };
    expect(newlyCrossedThresholds(rule, topUp, later, fired)).toEqual({ usage: pct(50), balance: null });
  });

  it("evaluates usage and balance rules independently, one notification each", () => {
    const mixed = [used(50), used(90), bal(25), bal(5)];
    const before = { usage: 40, balance: 60, totalGranted: 100 };
    const after = { usage: 96, balance: 4, totalGranted: 100 };
    expect(newlyCrossedThresholds(mixed, before, after, none)).toEqual({ usage: used(90), balance: bal(5) });
    expect(newlyCrossedThresholds(mixed, before, after, new Set(["balance_value:5"]))).toEqual({ usage: used(90), balance: null });
  });

  it("never returns a key already fired, even for legacy types", () => {
    const after = { usage: 120, balance: 0, totalGranted: 100 };
    const legacy: Threshold[] = [{ type: "NUMBER", value: 100 }];
    expect(newlyCrossedThresholds(legacy, null, after, new Set(["usage_value:100"])).usage).toBeNull();
    expect(newlyCrossedThresholds(legacy, null, after, none).usage).toEqual({ type: "NUMBER", value: 100 });
  });
});
