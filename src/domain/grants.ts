/**
 * Grant burn-down for one usage period of a metered entitlement, after OpenMeter's credit engine
 * (openmeter/credit/engine: run.go, reset.go, grant.go).
 *
 * Model
 * - A grant is active on [effectiveAt, min(expiresAt, voidedAt)). Whatever it has left when it
 *   stops being active is lost (OpenMeter zeroes inactive grants at each phase start).
 * - The period [start.at, at] is cut into *burn phases* at every effectiveAt / expiresAt /
 *   voidedAt that falls in (start.at, at]. Inside a phase the set of active grants is fixed, so
 *   burning the phase's summed usage in burn order gives the same result as burning event by
 *   event: only the usage *per phase* matters, not its order within the phase. That is why
 *   usage is given as timestamped points (e.g. per-minute buckets, or one sum per phase from
 *   `burnPhaseStarts`), and why a bare number is accepted only when the period has one phase.
 * - Burn order: priority ascending (lower number first, default 1), then earliest expiry (no
 *   expiry last), then earliest createdAt, then id (only so the order is total). This is the
 *   order documented on EntitlementGrant.priority; it never changes inside a period.
 * - Usage not covered by any active grant is overage. Overage is a debt that travels forward:
 *   it is burned first from the grants of the next phase (OpenMeter burns `usage + overage` per
 *   phase), so a grant that becomes effective mid-period first pays off earlier overage.
 * - A grant that becomes effective at or after `start.at` starts with its full amount. A grant
 *   effective before `start.at` starts with `start.balances[id]` (what the last reset left it);
 *   if it is missing there, it is assumed full (a grant back-dated into an earlier period: the
 *   caller should reject those or replay the earlier periods for OpenMeter-identical results).
 * - Output: balance = sum over grants active at `at`; usage = raw usage in the period (without
 *   carried-in overage), overage = uncovered usage incl. unpaid carried-in overage;
 *   totalAvailableGrantAmount = balance + everything burned from grants in the period (what the
 *   grants provided; OpenMeter's RunResult.TotalAvailableGrantAmount) — the 100% base of
 *   usage_percentage thresholds.
 *
 * Reset (`resetBalances`): every grant still active at the reset gets
 * `min(maxRolloverAmount, max(minRolloverAmount, balanceBeforeReset))` (Grant.RolloverBalance;
 * both default to 0, so by default nothing rolls over). Grants inactive at the reset are dropped.
 * With preserveOverageAtReset the period's overage is then burned from the rolled-over balances
 * in burn order, and what they cannot cover is carried into the next period as `start.overage`;
 * without it the overage is forgotten. An entitlement's `issueAfterReset` is just a grant with
 * amount = minRolloverAmount = maxRolloverAmount = issueAfterReset.
 *
 * Not modelled: recurring grants (grant.recurrence) and LATEST-aggregation meters, where
 * OpenMeter treats grant amounts as limits rather than budgets.
 */

import { settle } from "./values";

export interface Grant {
  id: string;
  amount: number;
  /** 1–255, lower burns first. Default 1. */
  priority?: number;
  effectiveAt: number;
  expiresAt: number | null;
  createdAt: number;
  /** Default 0. */
  minRolloverAmount?: number;
  /** Default 0. */
  maxRolloverAmount?: number;
  voidedAt?: number | null;
}

/** `amount` of usage recorded at `at` (epoch ms). */
export interface UsagePoint {
  at: number;
  amount: number;
}

/** State at the start of a usage period: entitlement start, a reset, or an automatic period roll. */
export interface PeriodStartState {
  at: number;
  /** Balance of each grant after rollover; grants effective at or after `at` need no entry. */
  balances: Readonly<Record<string, number>>;
  /** Overage carried in by preserveOverageAtReset; burned before any new usage. */
  overage: number;
}

export interface EntitlementBalance {
  balance: number;
  usage: number;
  overage: number;
  totalAvailableGrantAmount: number;
  /** Grants that were active at some point in the period; 0 for those no longer active. */
  grantBalances: Record<string, number>;
}

/** The state of a brand-new entitlement (no rollover, no carried overage). */
export function initialPeriodStart(at: number): PeriodStartState {
  return { at, balances: {}, overage: 0 };
}

function activeUntil(g: Grant): number {
  return Math.min(g.expiresAt ?? Infinity, g.voidedAt ?? Infinity);
}

/** effectiveAt <= t < min(expiresAt, voidedAt), as OpenMeter's Grant.ActiveAt. */
export function isGrantActiveAt(g: Grant, t: number): boolean {
  return g.effectiveAt <= t && t < activeUntil(g);
}

/** Grants sorted into burn order (see header); does not mutate its input. */
export function burnOrder(grants: readonly Grant[]): Grant[] {
  return [...grants].sort(
    (a, b) =>
      (a.priority ?? 1) - (b.priority ?? 1) ||
      (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) ||
      a.createdAt - b.createdAt ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/** Grants active at some instant of [from, at]. */
function relevantGrants(grants: readonly Grant[], from: number, at: number): Grant[] {
  return grants.filter((g) => g.effectiveAt <= at && activeUntil(g) > Math.max(from, g.effectiveAt));
}

/**
 * Start times of the burn phases of [from, at]: `from`, then every grant activity change in
 * (from, at]. Sum usage per phase ([starts[i], starts[i+1]), the last one up to and including
 * `at`) to feed `computeBalance` with exact input at minimal cost.
 */
export function burnPhaseStarts(grants: readonly Grant[], from: number, at: number): number[] {
  const times = new Set<number>([from]);
  for (const g of relevantGrants(grants, from, at)) {
    for (const t of [g.effectiveAt, activeUntil(g)]) if (t > from && t <= at) times.add(t);
  }
  return [...times].sort((x, y) => x - y);
}

/** a - b, with float residue (e.g. 0.1 + 0.2 - 0.3) snapped to 0. */
function minus(a: number, b: number): number {
  const r = a - b;
  return Math.abs(r) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b)) ? 0 : r;
}

/**
 * Burns `debt` from the active grants in order; mutates `balances`.
 * Returns [debt left over, amount burned].
 */
function burn(balances: Map<string, number>, ordered: readonly Grant[], debt: number): [number, number] {
  let left = debt;
  let burned = 0;
  for (const g of ordered) {
    if (left <= 0) break;
    const bal = balances.get(g.id) ?? 0;
    if (bal <= 0) continue;
    const take = Math.min(bal, left);
    balances.set(g.id, minus(bal, take));
    left = minus(left, take);
    burned += take;
  }
  return [left, burned];
}

function assertFinite(name: string, v: number): void {
  if (!Number.isFinite(v)) throw new RangeError(`${name} must be a finite number, got ${v}`);
}

export interface ComputeBalanceInput {
  grants: readonly Grant[];
  start: PeriodStartState;
  /** Evaluation time, >= start.at. Grants are judged active or not at this instant. */
  at: number;
  /**
   * Usage in [start.at, at]. A number is accepted only when no grant changes activity inside
   * the window (one burn phase); otherwise give points, which must lie in [start.at, at].
   */
  usage: number | readonly UsagePoint[];
}

/** The entitlement value at `at` (see the header for the model). */
export function computeBalance(input: ComputeBalanceInput): EntitlementBalance {
  const { start, at } = input;
  assertFinite("start.at", start.at);
  assertFinite("at", at);
  if (at < start.at) throw new RangeError(`at (${at}) is before the period start (${start.at})`);

  const grants = burnOrder(relevantGrants(input.grants, start.at, at));
  const phases = burnPhaseStarts(grants, start.at, at);

  const phaseUsage = new Array<number>(phases.length).fill(0);
  if (typeof input.usage === "number") {
    assertFinite("usage", input.usage);
    if (phases.length > 1) {
      throw new RangeError(
        `usage must be given as points: grants change activity at ${phases.slice(1).join(", ")} inside the period`,
      );
    }
    phaseUsage[0] = input.usage;
  } else {
    for (const p of input.usage) {
      assertFinite("usage point amount", p.amount);
      if (!(p.at >= start.at && p.at <= at)) throw new RangeError(`usage point at ${p.at} is outside [${start.at}, ${at}]`);
      // Last phase starting at or before p.at (binary search; phases is sorted, phases[0] = start.at).
      let lo = 0;
      let hi = phases.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if ((phases[mid] as number) <= p.at) lo = mid;
        else hi = mid - 1;
      }
      phaseUsage[lo] = (phaseUsage[lo] as number) + p.amount;
    }
  }

  const balances = new Map<string, number>();
  for (const g of grants) {
    assertFinite(`grant ${g.id} amount`, g.amount);
    balances.set(g.id, g.effectiveAt < start.at ? (start.balances[g.id] ?? g.amount) : g.amount);
  }

  let overage = Math.max(0, start.overage);
  let burnedTotal = 0;
  for (let i = 0; i < phases.length; i++) {
    const phaseStart = phases[i] as number;
    // Expired or voided grants simply drop out (their rest is lost: reported as 0 below).
    const active = grants.filter((g) => isGrantActiveAt(g, phaseStart));
    // Usage is never credited back to grants: a phase whose net usage is negative burns nothing.
    const [left, burned] = burn(balances, active, settle(overage + Math.max(0, settle(phaseUsage[i] as number))));
    overage = left;
    burnedTotal += burned;
  }

  const grantBalances: Record<string, number> = {};
  let balance = 0;
  for (const g of grants) {
    const b = isGrantActiveAt(g, at) ? settle(balances.get(g.id) ?? 0) : 0;
    grantBalances[g.id] = b;
    balance += b;
  }
  const usage = settle(phaseUsage.reduce((s, u) => s + settle(u), 0));
  return { balance: settle(balance), usage, overage: settle(overage), totalAvailableGrantAmount: settle(balance + burnedTotal), grantBalances };
}

/** Balance of a grant right after a reset: OpenMeter's Grant.RolloverBalance. */
export function rolloverBalance(g: Grant, balanceBeforeReset: number): number {
  return Math.min(g.maxRolloverAmount ?? 0, Math.max(g.minRolloverAmount ?? 0, balanceBeforeReset));
}

export interface ResetInput {
  grants: readonly Grant[];
  /** The entitlement value at the reset instant (computeBalance with at = the reset time). */
  before: Pick<EntitlementBalance, "grantBalances" | "overage">;
  /** Reset time: the start of the next period. */
  at: number;
  preserveOverage: boolean;
}

/** Rolls grants over at a reset or period roll and returns the next period's start state. */
export function resetBalances(input: ResetInput): PeriodStartState {
  const { at } = input;
  assertFinite("at", at);
  const balances = new Map<string, number>();
  // Grants effective exactly at `at` are left out: they start the new period full anyway.
  const carried = burnOrder(input.grants.filter((g) => g.effectiveAt < at && isGrantActiveAt(g, at)));
  for (const g of carried) {
    balances.set(g.id, rolloverBalance(g, input.before.grantBalances[g.id] ?? g.amount));
  }
  const [overage] = burn(balances, carried, input.preserveOverage ? Math.max(0, input.before.overage) : 0);
  return { at, balances: Object.fromEntries(balances), overage };
}
