import { DurableObject } from "cloudflare:workers";
import { foldBuckets, type FoldSpec, type FoldedRow } from "../domain/aggregate";
import { MeterSet, type MeterEvent } from "../domain/metering";
import { minuteOf } from "../domain/windows";
import { settings, type Env } from "../env";
import { readPrefolded } from "./prefold";
import { listEvents, pruneEvents, type EventListQuery, type StoredEvent } from "./events";
import { fromRows, ingestPlanned, type EventRows } from "./batch";
import { keepIf } from "./event-log";
import { ingestBatch, type DedupeHint, type IngestOutcome, type Rejection } from "./ingest";
import { Jobs } from "./jobs";
import { applyConfig, isStaleConfig, loadMeters, type ConfigRef, type StaleConfig } from "./meters";
import { getMeta, hasSchema, migrate, setMeta } from "./schema";
import type { BalanceHistory, HistoryQuery } from "./history";
import type { EntitlementCreate, EntitlementValue, GrantCreate } from "../domain/entitlement";
import { checkAndRecord, type CheckAnswer, type CheckInput } from "./check";
import { countEntitlementUsage, rebuildForMeters } from "./counters";
import { listEntitlements, ok, toRecord, type EntitlementRecord, type Result } from "./entitlements";
import { grantsOf, type GrantRow } from "./grants";
import * as ops from "./operations";
import { ensureCurrent, resetSegment, type ResetRequest } from "./segments";
import { Notifier } from "./notify";
import { resend } from "./outbox";
import { forgetOldWindows, SnapshotFlusher, type FlushReport } from "./snapshots";
import { Sql, type SqlCounters } from "./sql";
import { registerOnce } from "./subject";
import { applyFeatures } from "./features";

export interface Identity {
  namespace: string;
  subject: string;
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
  rejected: Rejection[];
}

/** What this customer's storage holds and what this instance's statements have cost (bench/ cost model). */
export interface StorageStats extends SqlCounters {
  databaseSize: number;
  events: number;
  buckets: number;
  /** Alarm invocations of this instance: billed as Durable Object requests. */
  alarms: number;
  /** When this instance started: counters restart with a new instance (after eviction or restart). */
  instanceStartedAt: number;
}

const PRUNE_EVERY_MS = 60 * 60_000;

/**
 * One customer (namespace + subject): the truth for its usage. Every RPC does its storage work
 * synchronously, so the runtime serialises them and no two interleave inside a transaction.
 */
export class CustomerDO extends DurableObject<Env> {
  protected readonly sql: Sql;
  protected readonly jobs: Jobs;
  protected readonly snapshots: SnapshotFlusher;
  protected readonly notifier: Notifier;
  protected meters: { version: number; set: MeterSet };
  protected identity: Identity | undefined;
  protected readonly startedAt = Date.now();
  /** Picks the cheaper way to dedupe the next batch (src/customer/ingest.ts storeNew). */
  protected readonly dedupe: DedupeHint = { duplicatesLikely: false };
  protected alarms = 0;
  private registered = false;
  /** False until the first write creates the schema (claim): until then every read answers "unknown". */
  private hasSchema: boolean;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = new Sql(ctx.storage);
    this.jobs = new Jobs(this.sql, ctx.storage);
    this.snapshots = new SnapshotFlusher(this.sql, this.jobs, env, () => this.identity);
    this.notifier = new Notifier(this.sql, this.jobs, env, () => this.identity);
    this.meters = { version: 0, set: new MeterSet([]) };
    // An object nobody has written to keeps no storage, not even the schema: reads naming unknown
    // subjects (typos, scans, hostile clients) must not leave a stored object behind for each name.
    this.hasSchema = hasSchema(this.sql);
    if (!this.hasSchema) return;
    migrate(this.sql);
    this.meters = loadMeters(this.sql);
    this.notifier.reload();
    const namespace = getMeta<string>(this.sql, "namespace");
    const subject = getMeta<string>(this.sql, "subject");
    if (namespace !== undefined && subject !== undefined) this.identity = { namespace, subject };
  }

  /** A batch of one subject: as EventRows (what the Worker sends: one string, cheap to pass) or as events. */
  async ingest(id: Identity, config: ConfigRef, batch: EventRows | MeterEvent[]): Promise<IngestResult | StaleConfig> {
    const now = Date.now();
    const outcome = await this.claiming(id, config, now, () => {
      const planned = Array.isArray(batch) ? null : ingestPlanned(this.sql, batch, this.meters.version, now, this.retentionMs(), this.dedupe);
      const o =
        planned ??
        ingestBatch(this.sql, this.meters.set, Array.isArray(batch) ? batch : fromRows(batch), now, this.retentionMs(), this.dedupe, Array.isArray(batch) ? undefined : batch.rows);
      if (o.accepted > 0) this.counted(o, now);
      return o;
    }, (o) => o.accepted > 0);
    if (isStaleConfig(outcome)) return outcome;
    return { accepted: outcome.accepted, duplicates: outcome.duplicates, rejected: outcome.rejected };
  }

  /** Folds the meter's buckets for a query; empty when this DO has nothing for the meter. At most `maxRows` + 1 rows cross the RPC. */
  query(id: Identity, config: ConfigRef, meterId: string, spec: FoldSpec, maxRows = Infinity): FoldedRow[] | StaleConfig {
    if (!this.owns(id)) return [];
    const fold = (): FoldedRow[] => {
      const meter = this.meters.set.byId.get(meterId);
      if (!meter) return [];
      const from = spec.from === null ? 0 : minuteOf(spec.from);
      const to = minuteOf(spec.to - 1) + 60_000;
      const { buckets, uniques } = readPrefolded(this.sql, meterId, from, to, spec.windowSize, spec.windowTimeZone, meter.def.aggregation);
      const rows = foldBuckets({ ...spec, aggregation: meter.def.aggregation }, buckets, uniques);
      return rows.length > maxRows ? rows.slice(0, maxRows + 1) : rows;
    };
    return this.synced(config, fold, "read");
  }

  events(id: Identity, q: EventListQuery): StoredEvent[] {
    if (!this.owns(id)) return [];
    return listEvents(this.sql, q);
  }

  /** A no-op round trip (GET /healthz/do): the floor every other RPC's latency is measured against. */
  ping(): boolean {
    return true;
  }

  /**
   * Storage size and the per-instance SQL counters (admin debug route). The counts use the raw SQL
   * API on purpose: reading them must not add to the rows-read figures being reported.
   */
  storageStats(id: Identity): StorageStats | null {
    if (!this.owns(id)) return null;
    const counters = this.sql.snapshot();
    const raw = this.ctx.storage.sql;
    const count = (table: string) => Number(raw.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n);
    return {
      ...counters,
      databaseSize: raw.databaseSize,
      events: count("events"),
      buckets: count("buckets"),
      alarms: this.alarms,
      instanceStartedAt: this.startedAt,
    };
  }

  // ---- Entitlements and grants (operations.ts, check.ts). Each call is one synchronous transaction. ----

  /** The first entitlement may come before the first event: creating one names the DO's customer. */
  async createEntitlement(id: Identity, config: ConfigRef, input: EntitlementCreate): Promise<Result<EntitlementRecord> | StaleConfig> {
    const now = Date.now();
    return this.claiming(id, config, now, () => ops.createEntitlement(this.sql, input, now), (r) => r.ok);
  }

  listEntitlements(id: Identity, config: ConfigRef, includeDeleted: boolean): EntitlementRecord[] | StaleConfig {
    const r = this.read(id, config, (now) =>
      ok(listEntitlements(this.sql, includeDeleted).map((e) => {
        if (e.def.metered && e.deletedAt === null) ensureCurrent(this.sql, e, grantsOf(this.sql, e.id), now);
        return toRecord(e, now);
      })),
    );
    if (isStaleConfig(r)) return r;
    return r.ok ? r.value : [];
  }

  getEntitlement(id: Identity, config: ConfigRef, idOrFeature: string): Result<EntitlementRecord> | StaleConfig {
    return this.read(id, config, (now) => ops.getEntitlement(this.sql, idOrFeature, now));
  }

  /** The entitlement named is replaced by `input` in one transaction (ops.overrideEntitlement). */
  async overrideEntitlement(id: Identity, config: ConfigRef, idOrFeature: string, input: EntitlementCreate): Promise<Result<{ replaced: string; entitlement: EntitlementRecord }> | StaleConfig> {
    if (!this.owns(id)) return unknownSubject(id);
    return this.write(config, (now) => ops.overrideEntitlement(this.sql, idOrFeature, input, now));
  }

  async deleteEntitlement(id: Identity, config: ConfigRef, idOrFeature: string): Promise<Result<{ id: string }> | StaleConfig> {
    if (!this.owns(id)) return unknownSubject(id);
    return this.write(config, (now) => ops.deleteEntitlement(this.sql, idOrFeature, now));
  }

  /** Served from the running counters (read-your-writes); `time` in the past is computed from buckets. */
  entitlementValue(id: Identity, config: ConfigRef, idOrFeature: string, time: number | null): Result<EntitlementValue & { entitlementId: string }> | StaleConfig {
    return this.read(id, config, (now) => ops.entitlementValue(this.sql, idOrFeature, time, now));
  }

  /** OpenMeter's history: windowed usage and the grants' burn-down (customer/history.ts). */
  entitlementHistory(id: Identity, config: ConfigRef, idOrFeature: string, q: HistoryQuery): Result<BalanceHistory> | StaleConfig {
    return this.read(id, config, (now) => ops.entitlementHistory(this.sql, idOrFeature, q, now));
  }

  async resetEntitlement(id: Identity, config: ConfigRef, idOrFeature: string, req: ResetRequest): Promise<Result<null> | StaleConfig> {
    if (!this.owns(id)) return unknownSubject(id);
    return this.write(config, (now) => {
      const e = ops.findLive(this.sql, idOrFeature);
      if (!e.ok) return e;
      const r = resetSegment(this.sql, e.value, grantsOf(this.sql, e.value.id), req, now);
      if (r.ok) this.notifier.reset(e.value, now);
      return r;
    });
  }

  async createGrant(id: Identity, config: ConfigRef, idOrFeature: string, input: GrantCreate): Promise<Result<GrantRow> | StaleConfig> {
    if (!this.owns(id)) return unknownSubject(id);
    return this.write(config, (now) => ops.createGrant(this.sql, idOrFeature, input, now));
  }

  /** `includeDeleted`: also a deleted entitlement's grants (by its id), for the namespace-wide list. */
  listGrants(id: Identity, idOrFeature: string, includeDeleted = false): Result<GrantRow[]> {
    if (!this.owns(id)) return unknownSubject(id);
    return this.sql.transaction(() => ops.listGrants(this.sql, idOrFeature, includeDeleted));
  }

  async voidGrant(id: Identity, config: ConfigRef, grantId: string, at: number | null): Promise<Result<number> | StaleConfig> {
    if (!this.owns(id)) return unknownSubject(id);
    return this.write(config, (now) => ops.voidGrant(this.sql, grantId, at, now));
  }

  /** Decides and, when allowed, records the event, in one transaction (check.ts). */
  async check(id: Identity, config: ConfigRef, input: CheckInput): Promise<Result<CheckAnswer> | StaleConfig> {
    if (!this.owns(id)) return unknownSubject(id);
    const now = Date.now();
    let recorded = false;
    const r = this.synced(
      config,
      () =>
        checkAndRecord(this.sql, this.meters.set, input, now, (events) => {
          const o = ingestBatch(this.sql, this.meters.set, events, now, this.retentionMs(), this.dedupe);
          if (o.accepted > 0) {
            this.counted(o, now);
            recorded = true;
          }
          return o;
        }),
      input.event === null ? "read" : "write",
    );
    if (recorded) await this.afterWrite(now);
    return r;
  }

  /** Reads never claim: a subject that has stored nothing is unknown. A read may still roll a period over. */
  protected read<T>(id: Identity, config: ConfigRef, fn: (now: number) => Result<T>): Result<T> | StaleConfig {
    if (!this.owns(id)) return unknownSubject(id);
    const now = Date.now();
    return this.synced(config, () => fn(now), "read");
  }

  protected async write<T>(config: ConfigRef, fn: (now: number) => Result<T>): Promise<Result<T> | StaleConfig> {
    const now = Date.now();
    const r = this.synced(config, () => fn(now));
    if (!isStaleConfig(r) && r.ok) await this.afterWrite(now);
    return r;
  }

  /**
   * `fn` in one transaction, after applying a newer config. Given only a version this object does not
   * hold, it answers StaleConfig and does nothing: the caller sends the snapshot (client.ts withConfig).
   * A "read" runs outside a transaction until it writes (Sql.readsFirst), unless definitions are to be applied.
   */
  protected synced<T>(config: ConfigRef, fn: () => T, kind: "read" | "write" = "write"): T | StaleConfig {
    const stale = this.staleFor(config);
    if (stale) return stale;
    const held = this.meters.version;
    try {
      if (kind === "read" && config.version <= held) return this.sql.readsFirst(fn);
      return this.sql.transaction(() => {
        this.sync(config);
        return fn();
      });
    } catch (e) {
      // Definitions applied in a transaction that rolled back are not stored: memory must not keep
      // them either, or later calls naming that version would count with meters never re-metered.
      if (this.meters.version !== held) {
        this.meters = loadMeters(this.sql);
        this.notifier.reload();
      }
      throw e;
    }
  }

  /** StaleConfig when `config` names a version this object does not hold and does not bring it. */
  protected staleFor(config: ConfigRef): StaleConfig | null {
    return config.version > this.meters.version && config.meters === undefined ? { staleConfig: true, holds: this.meters.version } : null;
  }

  /** Queues a notification again (same webhook-id) to all or the given channels; how many deliveries were queued. */
  async resendNotification(id: Identity, notificationId: string, channels: string[]): Promise<number> {
    if (!this.owns(id)) return 0;
    const now = Date.now();
    const n = this.sql.transaction(() => {
      const queued = resend(this.sql, notificationId, channels, now);
      if (queued) this.jobs.due("deliver", now);
      return queued;
    });
    await this.jobs.arm();
    return n;
  }

  /** The cron's safety net (src/jobs/cron.ts): flush to D1 now, even with nothing changed. */
  async flushSnapshots(id: Identity): Promise<FlushReport | null> {
    return this.owns(id) ? this.snapshots.nudge() : null;
  }

  override async alarm(): Promise<void> {
    this.alarms++;
    if (!this.hasSchema) return;
    await this.jobs.run({
      prune: (now) => {
        forgetOldWindows(this.sql, now, this.retentionMs());
        return pruneEvents(this.sql, minuteOf(now - this.retentionMs())) > 0 ? now + PRUNE_EVERY_MS : null;
      },
      deliver: (now) => this.notifier.deliver(now),
      flush: () => this.snapshots.job(),
    });
  }

  /**
   * Everything else a counted batch changes, inside the same transaction as the count
   * (DESIGN invariant 1): entitlement usage, threshold crossings, snapshot bookkeeping.
   */
  protected counted(outcome: IngestOutcome, now: number): void {
    this.jobs.due("prune", now + PRUNE_EVERY_MS);
    countEntitlementUsage(this.sql, outcome.buckets, now);
    this.notifier.evaluate(new Set(outcome.buckets.deltas().map((d) => d.meterId)), now);
    this.snapshots.changed(outcome.buckets, now);
  }

  protected retentionMs(): number {
    return settings(this.env).EVENT_RETENTION_DAYS * 86_400_000;
  }

  /** Applies a newer definition set; an older one (a stale isolate cache) is ignored. Inside a transaction. */
  protected sync(config: ConfigRef): void {
    if (config.version <= this.meters.version || config.meters === undefined) return;
    const { remetered } = applyConfig(this.sql, config);
    this.meters = loadMeters(this.sql);
    // Re-metered buckets replace what entitlement counters were built from.
    const slugs = new Set(remetered.map((r) => r.slug));
    rebuildForMeters(this.sql, new Set(config.meters.filter((m) => slugs.has(m.slug)).map((m) => m.id)), Date.now());
    this.snapshots.afterConfig(Date.now());
    this.notifier.configure(config.rules, config.channels);
    if (config.features) applyFeatures(this.sql, config.features);
  }

  /** Reads never claim: a DO that has stored nothing answers empty, whoever asks. */
  protected owns(id: Identity): boolean {
    if (!this.identity) return false;
    this.claim(id);
    return true;
  }

  /**
   * A write (`fn`, synced to `config`) that names this object's customer (claim), followed by
   * afterWrite when `stored` says it stored something. On an object that has stored nothing, the
   * claim (schema, identity) and the write are one transaction, kept only if it stored something: a
   * batch whose every event is refused, or an entitlement refused, must not leave storage behind for
   * each subject name a client sends, any more than a read does.
   */
  protected async claiming<T>(id: Identity, config: ConfigRef, now: number, fn: () => T, stored: (r: T) => boolean): Promise<T | StaleConfig> {
    let r: T | StaleConfig;
    if (this.identity) {
      this.claim(id);
      r = this.synced(config, fn);
    } else r = this.claimingFirst(id, config, fn, stored);
    if (!isStaleConfig(r) && stored(r)) await this.afterWrite(now);
    return r;
  }

  private claimingFirst<T>(id: Identity, config: ConfigRef, fn: () => T, stored: (r: T) => boolean): T | StaleConfig {
    // The usual first call (a version without the definitions) creates nothing only to roll it back.
    const stale = this.staleFor(config);
    if (stale) return stale;
    let r!: T | StaleConfig;
    try {
      if (keepIf(this.sql, () => (this.claim(id), (r = this.synced(config, fn)), !isStaleConfig(r) && stored(r)))) return r;
    } catch (e) {
      this.unclaim();
      throw e;
    }
    this.unclaim();
    return r;
  }

  /**
   * After the claiming transaction rolled back: memory as storage holds it. Usually nothing; but an
   * object a read reached before tables were created lazily (9655643) has the schema and the
   * definitions it was read with, and no identity: taking it for empty forgot that it holds them, so
   * an older snapshot from a stale isolate was applied over the newer stored one. The notification
   * definitions the rolled-back config brought are dropped too.
   */
  private unclaim(): void {
    this.identity = undefined;
    this.hasSchema = hasSchema(this.sql);
    if (this.hasSchema) {
      this.meters = loadMeters(this.sql);
      this.notifier.reload();
    } else {
      this.meters = { version: 0, set: new MeterSet([]) };
      this.notifier.clear();
    }
  }

  /** The first writer names the DO's customer; a DO never serves another (tenant isolation). */
  protected claim(id: Identity): void {
    if (this.identity) {
      if (this.identity.namespace !== id.namespace || this.identity.subject !== id.subject) {
        throw new Error("customer durable object addressed with a foreign identity");
      }
      return;
    }
    if (!this.hasSchema) {
      migrate(this.sql);
      this.hasSchema = true;
    }
    this.sql.transaction(() => {
      setMeta(this.sql, "namespace", id.namespace);
      setMeta(this.sql, "subject", id.subject);
    });
    this.identity = id;
  }

  protected async afterWrite(now: number): Promise<void> {
    await this.jobs.arm();
    if (this.registered || !this.identity) return;
    // Once registered, always: remembered so that a batch does not read the row back each time.
    // Outside the transaction on purpose: the usage is already durable; if D1 fails, the next batch retries.
    this.registered = (await registerOnce(this.sql, this.env, this.identity, now)) !== undefined;
  }
}

function unknownSubject(id: Identity): Result<never> {
  return { ok: false, code: "not_found", detail: `subject ${id.subject} is unknown: it has neither events nor entitlements`, missing: "subject" };
}
