import { describe, expect, it } from "vitest";
import {
  burnOrder,
  burnPhaseStarts,
  computeBalance,
  type Grant,
  initialPeriodStart,
  isGrantActiveAt,
  resetBalances,
  rolloverBalance,
} from "../../src/domain/grants";

const DAY = 86_400_000;
const T0 = Date.parse("2025-01-01T00:00:00Z");
const at = (days: number) => T0 + days * DAY;

function grant(id: string, amount: number, extra: Partial<Grant> = {}): Grant {
  return { id, amount, effectiveAt: at(-30), expiresAt: null, createdAt: at(-30), ...extra };
}

describe("burn order", () => {
  it("orders by priority, then nearest expiry (none last), then creation time", () => {
    const grants = [
      grant("a", 100, { priority: 2 }),
      grant("b", 50, { expiresAt: at(60) }),
      grant("noexp", 10),
      grant("d", 30, { expiresAt: at(20), createdAt: at(-10) }),
      grant("c", 30, { expiresAt: at(20), createdAt: at(-20) }),
    ];
    expect(burnOrder(grants).map((g) => g.id)).toEqual(["c", "d", "b", "noexp", "a"]);
    expect(grants[0]?.id).toBe("a"); // input untouched
  });

  it("burns usage in that order", () => {
    const grants = [
      grant("a", 100, { priority: 2 }),
      grant("b", 50, { priority: 1, expiresAt: at(60) }),
      grant("c", 30, { priority: 1, expiresAt: at(20), createdAt: at(-20) }),
      grant("d", 30, { priority: 1, expiresAt: at(20), createdAt: at(-10) }),
    ];
    const v = computeBalance({ grants, start: initialPeriodStart(T0), at: at(5), usage: 70 });
    expect(v).toEqual({
      balance: 140,
      usage: 70,
      overage: 0,
      totalAvailableGrantAmount: 210,
      grantBalances: { c: 0, d: 0, b: 40, a: 100 },
    });
  });
});

describe("overage", () => {
  it("is the usage no grant covers", () => {
    const v = computeBalance({ grants: [grant("g", 100)], start: initialPeriodStart(T0), at: at(3), usage: 130 });
    expect(v).toMatchObject({ balance: 0, usage: 130, overage: 30, totalAvailableGrantAmount: 100 });
  });

  it("is paid off first by a grant that becomes effective later in the period", () => {
    const grants = [grant("x", 50), grant("z", 100, { effectiveAt: at(5), createdAt: at(5) })];
    const usage = [
      { at: at(1), amount: 80 },
      { at: at(6), amount: 10 },
    ];
    const before = computeBalance({ grants, start: initialPeriodStart(T0), at: at(3), usage: usage.slice(0, 1) });
    expect(before).toEqual({ balance: 0, usage: 80, overage: 30, totalAvailableGrantAmount: 50, grantBalances: { x: 0 } });

    const after = computeBalance({ grants, start: initialPeriodStart(T0), at: at(7), usage });
    expect(after).toEqual({ balance: 60, usage: 90, overage: 0, totalAvailableGrantAmount: 150, grantBalances: { x: 0, z: 60 } });
  });

  it("snaps float residue instead of reporting 5e-17 of overage", () => {
    const v = computeBalance({
      grants: [grant("g", 0.3)],
      start: initialPeriodStart(T0),
      at: at(1),
      usage: [
        { at: T0, amount: 0.1 },
        { at: T0, amount: 0.2 },
      ],
    });
    expect(v.overage).toBe(0);
    expect(v.balance).toBe(0);
  });
});

describe("grants that expire or are voided mid-period", () => {
  const grants = [grant("x", 100, { expiresAt: at(10) }), grant("y", 100, { priority: 2 })];

  it("burns each phase's usage from the grants active in that phase; the expired rest is lost", () => {
    const v = computeBalance({
      grants,
      start: initialPeriodStart(T0),
      at: at(15),
      usage: [
        { at: at(1), amount: 30 },
        { at: at(12), amount: 50 },
      ],
    });
    // x burns 30 and loses its remaining 70 at day 10; y covers the 50 after that.
    expect(v).toEqual({ balance: 50, usage: 80, overage: 0, totalAvailableGrantAmount: 130, grantBalances: { x: 0, y: 50 } });
  });

  it("refuses a bare usage total when the period has several burn phases", () => {
    expect(burnPhaseStarts(grants, T0, at(15))).toEqual([T0, at(10)]);
    expect(() => computeBalance({ grants, start: initialPeriodStart(T0), at: at(15), usage: 80 })).toThrow(RangeError);
    // Before the expiry there is one phase, so a total is exact.
    expect(computeBalance({ grants, start: initialPeriodStart(T0), at: at(9), usage: 30 }).grantBalances).toEqual({ x: 70, y: 100 });
  });

  it("does not burn a grant at the instant it expires", () => {
    expect(isGrantActiveAt(grants[0] as Grant, at(10))).toBe(false);
    const v = computeBalance({ grants, start: initialPeriodStart(T0), at: at(10), usage: [{ at: at(10), amount: 10 }] });
    expect(v.grantBalances).toEqual({ x: 0, y: 90 });
    expect(v.balance).toBe(90);
  });

  it("treats voidedAt like an expiry", () => {
    const voided = [grant("v", 100, { voidedAt: at(4) }), grant("w", 20, { priority: 3 })];
    const v = computeBalance({
      grants: voided,
      start: initialPeriodStart(T0),
      at: at(8),
      usage: [
        { at: at(2), amount: 40 },
        { at: at(6), amount: 30 },
      ],
    });
    expect(v).toEqual({ balance: 0, usage: 70, overage: 10, totalAvailableGrantAmount: 60, grantBalances: { v: 0, w: 0 } });
  });

  it("rejects usage points outside the window", () => {
    const input = { grants, start: initialPeriodStart(T0), at: at(5) };
    expect(() => computeBalance({ ...input, usage: [{ at: at(-1), amount: 1 }] })).toThrow(RangeError);
    expect(() => computeBalance({ ...input, usage: [{ at: at(6), amount: 1 }] })).toThrow(RangeError);
  });

  it("ignores grants not yet effective and counts negative net usage without crediting grants", () => {
    const later = [grant("now", 10), grant("future", 500, { effectiveAt: at(20) })];
    const v = computeBalance({
      grants: later,
      start: initialPeriodStart(T0),
      at: at(5),
      usage: [
        { at: at(1), amount: 5 },
        { at: at(2), amount: -8 },
      ],
    });
    expect(v).toEqual({ balance: 10, usage: -3, overage: 0, totalAvailableGrantAmount: 10, grantBalances: { now: 10 } });
  });
});

describe("period start balances", () => {
  it("uses the rolled-over balance of grants effective before the period, full amount otherwise", () => {
    const grants = [grant("old", 100), grant("new", 40, { effectiveAt: T0, priority: 2 }), grant("unknown", 5, { priority: 3 })];
    const v = computeBalance({ grants, start: { at: T0, balances: { old: 20, new: 0 }, overage: 0 }, at: at(1), usage: 30 });
    // old has 20 left from the reset; new starts at T0 so it is full whatever the map says.
    expect(v.grantBalances).toEqual({ old: 0, new: 30, unknown: 5 });
  });
});

describe("rollover", () => {
  it("computes min(max, max(min, balance)) like OpenMeter's Grant.RolloverBalance", () => {
    const g = (min: number, max: number) => grant("g", 100, { minRolloverAmount: min, maxRolloverAmount: max });
    expect(rolloverBalance(grant("g", 100), 70)).toBe(0); // defaults: nothing rolls over
    expect(rolloverBalance(g(0, 50), 70)).toBe(50);
    expect(rolloverBalance(g(0, 100), 30)).toBe(30);
    expect(rolloverBalance(g(40, 100), 10)).toBe(40);
    expect(rolloverBalance(g(100, 100), 0)).toBe(100); // issueAfterReset
    expect(rolloverBalance(g(80, 50), 10)).toBe(50); // min > max: max wins
  });

  it("burns preserved overage from the rolled-over balances first and carries the rest", () => {
    const grants = [
      grant("issue", 100, { minRolloverAmount: 100, maxRolloverAmount: 100 }),
      grant("big", 500, { priority: 2, maxRolloverAmount: 500 }),
    ];
    const endOfJan = computeBalance({ grants, start: { at: T0, balances: { issue: 100, big: 0 }, overage: 0 }, at: at(31), usage: 250 });
    expect(endOfJan).toMatchObject({ balance: 0, overage: 150 });

    const feb = resetBalances({ grants, before: endOfJan, at: at(31), preserveOverage: true });
    expect(feb).toEqual({ at: at(31), balances: { issue: 0, big: 0 }, overage: 50 });

    // The debt stays until a grant can pay it; a top-up mid-February pays it first.
    const topUp = grant("topup", 80, { effectiveAt: at(40), createdAt: at(40), priority: 3 });
    const v = computeBalance({ grants: [...grants, topUp], start: feb, at: at(45), usage: [{ at: at(41), amount: 10 }] });
    expect(v).toMatchObject({ balance: 20, usage: 10, overage: 0, totalAvailableGrantAmount: 80 });
    expect(v.grantBalances).toEqual({ issue: 0, big: 0, topup: 20 });
  });

  it("forgets overage without preserveOverageAtReset", () => {
    const grants = [grant("issue", 100, { minRolloverAmount: 100, maxRolloverAmount: 100 })];
    const next = resetBalances({ grants, before: { grantBalances: { issue: 0 }, overage: 150 }, at: at(31), preserveOverage: false });
    expect(next).toEqual({ at: at(31), balances: { issue: 100 }, overage: 0 });
  });

  it("drops grants inactive at the reset and leaves grants starting at the reset full", () => {
    const grants = [
      grant("expired", 100, { expiresAt: at(31), maxRolloverAmount: 100 }),
      grant("fresh", 60, { effectiveAt: at(31), createdAt: at(31) }),
      grant("kept", 100, { maxRolloverAmount: 25 }),
    ];
    const next = resetBalances({
      grants,
      before: { grantBalances: { expired: 0, kept: 90 }, overage: 0 },
      at: at(31),
      preserveOverage: true,
    });
    expect(next.balances).toEqual({ kept: 25 });
    const v = computeBalance({ grants, start: next, at: at(32), usage: 10 });
    expect(v).toMatchObject({ balance: 75, grantBalances: { kept: 15, fresh: 60 } });
  });
});
