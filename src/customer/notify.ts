import { disableChannel, upsertNotificationEvents } from "../db/notifications";
import { database } from "../db/client";
import { renderEntitlement } from "./entitlement-view";
import { ulid } from "../domain/ids";
import { ruleAppliesTo, type ChannelDef, type RuleDef } from "../domain/notification";
import { newlyCrossedThresholds, thresholdKey, type Threshold, type ThresholdSubject } from "../domain/thresholds";
import { iso } from "../domain/time";
import { settings, type Env } from "../env";
import { liveMetered, toRecord, type EntitlementRow } from "./entitlements";
import { grantsOf } from "./grants";
import type { Jobs } from "./jobs";
import { deliverDue, enqueue, nextDue, type DeliveryPolicy, type DeliveryRow } from "./outbox";
import { jsonChunks } from "../domain/chunks";
import { getMeta, setMeta } from "./schema";
import { featureDef } from "./features";
import { registerOnce, refreshSubject, storedSubject } from "./subject";
import { renderFeature } from "../domain/feature";
import { balanceNow, toValue } from "./segments";
import type { Sql } from "./sql";
import type { Identity } from "./do";

const MIRROR_RETRY_MS = 30_000;
/** Notifications copied to D1 per delivery run (one D1 batch). */
const MIRROR_PAGE = 50;
const FIRED = "fired:";
/** Meta flag: some payload was written before the subject's D1 row was known. */
const INCOMPLETE = "subject_incomplete";
/** Meta keys of the notification definitions: one row per rule and per channel (configure). */
const RULE_DEF = "notify:rule:";
const CHANNEL_DEF = "notify:channel:";
const DEFS_FROM = "notify:";
const DEFS_TO = "notify;";
/** Where objects kept all rules and channels as one value before. */
const LEGACY_DEFS = "notify";

/**
 * Threshold and reset notifications of one customer. Crossings are found inside the ingest/check
 * transaction, so a notification row exists exactly when the usage that crossed was committed;
 * `fired` keeps one notification per (rule, entitlement, usage period, threshold), whatever retries
 * or concurrency do. A reset starts a new period (a new `segStart`), so thresholds can fire again.
 */
export class Notifier {
  private rules: RuleDef[] = [];
  private channels = new Map<string, ChannelDef>();

  constructor(
    private readonly sql: Sql,
    private readonly jobs: Jobs,
    private readonly env: Env,
    private readonly identity: () => Identity | undefined,
  ) {}

  /** The definitions as stored: at start, and after a transaction that configured newer ones rolled back. */
  reload(): void {
    // An object configured before definitions had a row each holds them as one value until its next config.
    const legacy = getMeta<string>(this.sql, LEGACY_DEFS);
    if (legacy) return this.load(JSON.parse(legacy) as { rules: RuleDef[]; channels: ChannelDef[] });
    const c: { rules: RuleDef[]; channels: ChannelDef[] } = { rules: [], channels: [] };
    for (const [key, def] of this.storedDefs()) {
      if (key.startsWith(RULE_DEF)) c.rules.push(JSON.parse(def) as RuleDef);
      else c.channels.push(JSON.parse(def) as ChannelDef);
    }
    this.load(c);
  }

  /** No definitions: an object that stores none (its claim rolled back, do.ts unclaim). */
  clear(): void {
    this.load({ rules: [], channels: [] });
  }

  /**
   * A newer definition set arrived (inside the sync transaction). Each rule and channel is a meta row
   * of its own, written only when it changed: as one value, a namespace's definitions passed
   * production's 2 MB per string (62 channels of 32 one-KB custom headers did), and every call of
   * every subject of the namespace failed from then on.
   */
  configure(rules: readonly RuleDef[] | undefined, channels: readonly ChannelDef[] | undefined): void {
    if (!rules || !channels) return;
    const next = new Map<string, RuleDef | ChannelDef>([...rules.map((r) => [RULE_DEF + r.id, r] as const), ...channels.map((ch) => [CHANNEL_DEF + ch.id, ch] as const)]);
    const stored = this.storedDefs();
    const gone = [...stored.keys()].filter((key) => !next.has(key));
    if (getMeta(this.sql, LEGACY_DEFS) !== undefined) gone.push(LEGACY_DEFS);
    for (const keys of jsonChunks(gone)) this.sql.exec("DELETE FROM meta WHERE key IN (SELECT value FROM json_each(?))", keys);
    const changed = [...next].filter(([key, def]) => stored.get(key) !== JSON.stringify(def));
    for (const rows of jsonChunks(changed)) {
      this.sql.exec("INSERT INTO meta (key, value) SELECT value->>0, value->1 FROM json_each(?) WHERE true ON CONFLICT(key) DO UPDATE SET value = excluded.value", rows);
    }
    this.load({ rules: [...rules], channels: [...channels] });
  }

  /** The stored rule and channel rows, by meta key, in key order (so rules keep D1's order by id). */
  private storedDefs(): Map<string, string> {
    const rows = this.sql.all<{ key: string; value: string }>("SELECT key, value FROM meta WHERE key > ? AND key < ? ORDER BY key", DEFS_FROM, DEFS_TO);
    return new Map(rows.map((r) => [r.key, r.value]));
  }

  private load(c: { rules: RuleDef[]; channels: ChannelDef[] }): void {
    this.rules = c.rules.filter((r) => !r.disabled);
    this.channels = new Map(c.channels.map((ch) => [ch.id, ch]));
  }

  /**
   * After a batch was counted (same transaction): for each entitlement on a touched meter, the most
   * advanced threshold of each kind that its value has reached and that has not fired in this usage
   * period fires — OpenMeter's rule, so a rule created when usage is already past a threshold fires
   * on the next event, and a lower threshold skipped by a big batch is not sent afterwards.
   */
  evaluate(touchedMeters: ReadonlySet<string>, now: number): number {
    if (!this.rules.some((r) => r.type === "entitlements.balance.threshold")) return 0;
    let enqueued = 0;
    for (const e of liveMetered(this.sql)) {
      if (!touchedMeters.has(e.def.metered!.meterId)) continue;
      const rules = this.rulesFor(e, "entitlements.balance.threshold");
      if (rules.length === 0) continue;
      const b = balanceNow(this.sql, e, grantsOf(this.sql, e.id), now);
      const value: ThresholdSubject = { usage: b.usage, balance: b.balance, totalGranted: b.totalAvailableGrantAmount };
      for (const rule of rules) {
        const fired = this.fired(rule.id, e.id, e.segStart);
        const crossed = newlyCrossedThresholds(rule.thresholds as Threshold[], null, value, fired);
        for (const t of [crossed.usage, crossed.balance]) {
          if (!t) continue;
          this.sql.exec("INSERT INTO fired (rule_id, entitlement_id, period, threshold_key) VALUES (?, ?, ?, ?)", rule.id, e.id, e.segStart, thresholdKey(t));
          fired.add(thresholdKey(t));
          this.emit(rule, e, "entitlements.balance.threshold", now, { threshold: t });
          enqueued++;
        }
      }
    }
    return enqueued;
  }

  /** An entitlement was reset (inside the reset transaction): `entitlements.reset` rules fire. */
  reset(e: EntitlementRow, now: number): void {
    // A reset may start its period in the same minute as the one it ends; forgetting what fired is
    // what lets thresholds fire again in the new period.
    this.sql.forget(FIRED);
    this.sql.exec("DELETE FROM fired WHERE entitlement_id = ?", e.id);
    for (const rule of this.rulesFor(e, "entitlements.reset")) this.emit(rule, e, "entitlements.reset", now, {});
  }

  /** The threshold keys fired for (rule, entitlement, period): memoised, and added to as they fire. */
  private fired(ruleId: string, entitlementId: string, period: number): Set<string> {
    return this.sql.memo(`${FIRED}${ruleId}\u0000${entitlementId}\u0000${period}`, () =>
      new Set(
        this.sql
          .all<{ threshold_key: string }>("SELECT threshold_key FROM fired WHERE rule_id = ? AND entitlement_id = ? AND period = ?", ruleId, entitlementId, period)
          .map((r) => r.threshold_key),
      ),
    );
  }

  private rulesFor(e: EntitlementRow, type: RuleDef["type"]): RuleDef[] {
    return this.rules.filter((r) => r.type === type && ruleAppliesTo(r, e.featureId, e.featureKey));
  }

  private emit(rule: RuleDef, e: EntitlementRow, type: RuleDef["type"], now: number, extra: Record<string, unknown>): void {
    const who = this.identity();
    const channels = rule.channels.filter((id) => this.channels.get(id) && !this.channels.get(id)!.disabled);
    if (!who || channels.length === 0) return;
    const id = ulid(now);
    const value = toValue(e, balanceNow(this.sql, e, grantsOf(this.sql, e.id), now));
    const subject = storedSubject(this.sql);
    // Until the subject's D1 row is known (its first batch, before registration), the payload names
    // the key alone and delivery completes it first (completeSubjects).
    if (!subject) setMeta(this.sql, INCOMPLETE, 1);
    const payload = {
      id,
      type,
      timestamp: iso(now),
      data: {
        entitlement: renderEntitlement(toRecord(e, now), who.subject),
        feature: this.feature(e),
        subject: subject ?? { key: who.subject },
        value,
        ...extra,
      },
    };
    enqueue(this.sql, { id, ruleId: rule.id, type, createdAt: now, payload, channelIds: channels });
    this.sql.exec("UPDATE notifications SET feature_key = ? WHERE id = ?", e.featureKey, id);
    this.jobs.due("deliver", now);
  }

  /**
   * The entitlement's feature as the features API shows it, from the namespace config. An object
   * always holds a config at least as new as its entitlements' features, so the fallback (the
   * entitlement's own id and key, its creation time) only covers a config that failed to arrive.
   */
  private feature(e: EntitlementRow) {
    const f = featureDef(this.sql, e.featureId);
    return f ? renderFeature(f) : { id: e.featureId, key: e.featureKey, name: e.featureKey, createdAt: iso(e.createdAt), updatedAt: iso(e.createdAt) };
  }

  /**
   * Gives payloads written before the subject's D1 row was known its full row (the webhook-id and
   * everything else unchanged). False when D1 could not be reached: nothing is sent until it can,
   * so a receiver never gets a subject without its id.
   */
  private async completeSubjects(now: number): Promise<boolean> {
    const who = this.identity();
    if (!who || getMeta(this.sql, INCOMPLETE) === undefined) return true;
    const subject = await registerOnce(this.sql, this.env, who, now);
    if (!subject) return false;
    this.sql.transaction(() => {
      this.sql.exec(
        "UPDATE notifications SET payload = json_set(payload, '$.data.subject', json(?)), version = version + 1 WHERE json_extract(payload, '$.data.subject.id') IS NULL",
        JSON.stringify(subject),
      );
      this.sql.exec("DELETE FROM meta WHERE key = ?", INCOMPLETE);
    });
    return true;
  }

  /** The alarm's delivery job: send what is due, disable channels that answered 410, copy status to D1. */
  async deliver(now: number): Promise<number | null> {
    const policy = this.policy();
    if (!(await this.completeSubjects(now))) return Date.now() + MIRROR_RETRY_MS;
    const report = await deliverDue(this.sql, this.channels, now, policy);
    const who = this.identity();
    for (const channelId of report.gone) {
      const ch = this.channels.get(channelId);
      if (ch) ch.disabled = true;
      // Their notification events change too: D1's copy would otherwise list them as pending forever.
      this.sql.exec(
        "UPDATE notifications SET version = version + 1 WHERE id IN (SELECT notification_id FROM deliveries WHERE channel_id = ? AND state IN ('PENDING','RESENDING'))",
        channelId,
      );
      this.sql.exec(
        "UPDATE deliveries SET state = 'FAILED', reason = 'channel disabled: receiver answered 410 Gone', next_attempt_at = NULL WHERE channel_id = ? AND state IN ('PENDING','RESENDING')",
        channelId,
      );
      if (who) await disableChannel(database(this.env.DB), who.namespace, channelId, Date.now()).catch((e) => console.error("disabling channel failed", e));
    }
    const mirrored = await this.mirror();
    const next = nextDue(this.sql, policy);
    // Changed notifications left over (a 410 can fail more deliveries than one copy carries) are
    // copied on the next run, even when no delivery is due any more.
    if (mirrored === "more") return Date.now();
    return mirrored === "done" ? next : Math.min(next ?? Infinity, Date.now() + MIRROR_RETRY_MS);
  }

  private policy(): DeliveryPolicy {
    const s = settings(this.env);
    return { timeoutMs: s.WEBHOOK_TIMEOUT_MS, retryScale: s.WEBHOOK_RETRY_SCALE };
  }

  /** Copies changed notifications (absolute values) to D1 for namespace-wide listing, up to MIRROR_PAGE of them. */
  async mirror(): Promise<"done" | "more" | "failed"> {
    const who = this.identity();
    if (!who) return "done";
    const rows = this.sql.all<{ id: string; rule_id: string; type: string; created_at: number; payload: string; feature_key: string | null; version: number }>(
      "SELECT id, rule_id, type, created_at, payload, feature_key, version FROM notifications WHERE version > mirrored_version LIMIT ?",
      MIRROR_PAGE,
    );
    if (rows.length === 0) return "done";
    const deliveries = (id: string) =>
      this.sql.all<DeliveryRow>("SELECT * FROM deliveries WHERE notification_id = ?", id).map((d) => ({
        channel: { id: d.channel_id, type: "WEBHOOK" },
        state: d.state,
        reason: d.reason,
        updatedAt: iso(d.updated_at),
        ...(d.next_attempt_at !== null && (d.state === "PENDING" || d.state === "RESENDING") ? { nextAttempt: iso(d.next_attempt_at) } : {}),
        attempts: JSON.parse(d.log) as unknown[],
      }));
    try {
      await upsertNotificationEvents(
        database(this.env.DB),
        rows.map((r) => {
          const payload = JSON.parse(r.payload) as { data?: { feature?: { id?: string } } };
          return {
            id: r.id,
            namespace: who.namespace,
            ruleId: r.rule_id,
            type: r.type,
            subject: who.subject,
            featureKey: r.feature_key,
            featureId: payload.data?.feature?.id ?? null,
            createdAt: r.created_at,
            payload,
            deliveries: deliveries(r.id),
          };
        }),
      );
    } catch (e) {
      console.error("notification mirror to D1 failed; will retry", e);
      return "failed";
    }
    // After the sends, off their path: details upserted since registration show in the next payload.
    await refreshSubject(this.sql, this.env, who).catch((e) => console.error("reading the subject's D1 row failed", e));
    for (const r of rows) this.sql.exec("UPDATE notifications SET mirrored_version = ? WHERE id = ?", r.version, r.id);
    return rows.length < MIRROR_PAGE ? "done" : "more";
  }
}
