import { DurableObject } from "cloudflare:workers";
import { foldBuckets, type FoldSpec, type FoldedRow } from "../domain/aggregate";
import type { MeterEvent, MeterSet } from "../domain/metering";
import { minuteOf } from "../domain/windows";
import { settings, type Env } from "../env";
import { registerSubject } from "../db/subjects";
import { database } from "../db/client";
import { readBuckets, readUniques } from "./buckets";
import { listEvents, pruneEvents, type EventListQuery, type StoredEvent } from "./events";
import { ingestBatch, type IngestOutcome, type Rejection } from "./ingest";
import { Jobs } from "./jobs";
import { applyConfig, loadMeters, type ConfigSnapshot } from "./meters";
import { getMeta, migrate, setMeta } from "./schema";
import { Sql } from "./sql";

export interface Identity {
  namespace: string;
  subject: string;
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
  rejected: Rejection[];
}

const PRUNE_EVERY_MS = 60 * 60_000;

/**
 * One customer (namespace + subject): the truth for its usage. Every RPC does its storage work
 * synchronously, so the runtime serialises them and no two interleave inside a transaction.
 */
export class CustomerDO extends DurableObject<Env> {
  protected readonly sql: Sql;
  protected readonly jobs: Jobs;
  protected meters: { version: number; set: MeterSet };
  protected identity: Identity | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = new Sql(ctx.storage);
    this.jobs = new Jobs(this.sql, ctx.storage);
    migrate(this.sql);
    this.meters = loadMeters(this.sql);
    const namespace = getMeta<string>(this.sql, "namespace");
    const subject = getMeta<string>(this.sql, "subject");
    if (namespace !== undefined && subject !== undefined) this.identity = { namespace, subject };
  }

  async ingest(id: Identity, config: ConfigSnapshot, events: MeterEvent[]): Promise<IngestResult> {
    this.claim(id);
    const now = Date.now();
    const outcome = this.sql.transaction(() => {
      this.sync(config);
      const o = ingestBatch(this.sql, this.meters.set, events, now, this.retentionMs());
      if (o.accepted > 0) this.counted(o, now);
      return o;
    });
    if (outcome.accepted > 0) await this.afterWrite(now);
    return { accepted: outcome.accepted, duplicates: outcome.duplicates, rejected: outcome.rejected };
  }

  /** Folds the meter's buckets for a query; empty when this DO has nothing for the meter. */
  query(id: Identity, config: ConfigSnapshot, meterId: string, spec: FoldSpec): FoldedRow[] {
    if (!this.owns(id)) return [];
    this.sql.transaction(() => this.sync(config));
    const meter = this.meters.set.byId.get(meterId);
    if (!meter) return [];
    const from = spec.from === null ? 0 : minuteOf(spec.from);
    const to = minuteOf(spec.to - 1) + 60_000;
    const buckets = readBuckets(this.sql, meterId, from, to);
    const uniques = meter.def.aggregation === "UNIQUE_COUNT" ? readUniques(this.sql, meterId, from, to) : [];
    return foldBuckets({ ...spec, aggregation: meter.def.aggregation }, buckets, uniques);
  }

  events(id: Identity, q: EventListQuery): StoredEvent[] {
    if (!this.owns(id)) return [];
    return listEvents(this.sql, q);
  }

  override async alarm(): Promise<void> {
    await this.jobs.run({
      prune: (now) => (pruneEvents(this.sql, minuteOf(now - this.retentionMs())) > 0 ? now + PRUNE_EVERY_MS : null),
      deliver: () => null,
      flush: () => null,
    });
  }

  /**
   * Everything else a counted batch changes, inside the same transaction as the count
   * (DESIGN invariant 1): entitlement usage, threshold crossings, snapshot bookkeeping.
   */
  protected counted(outcome: IngestOutcome, now: number): void {
    this.jobs.due("prune", now + PRUNE_EVERY_MS);
    void outcome;
  }

  protected retentionMs(): number {
    return settings(this.env).EVENT_RETENTION_DAYS * 86_400_000;
  }

  /** Applies a newer definition set; an older one (a stale isolate cache) is ignored. Inside a transaction. */
  protected sync(config: ConfigSnapshot): void {
    if (config.version <= this.meters.version) return;
    applyConfig(this.sql, config);
    this.meters = loadMeters(this.sql);
  }

  /** Reads never claim: a DO that has stored nothing answers empty, whoever asks. */
  protected owns(id: Identity): boolean {
    if (!this.identity) return false;
    this.claim(id);
    return true;
  }

  /** The first writer names the DO's customer; a DO never serves another (tenant isolation). */
  protected claim(id: Identity): void {
    if (this.identity) {
      if (this.identity.namespace !== id.namespace || this.identity.subject !== id.subject) {
        throw new Error("customer durable object addressed with a foreign identity");
      }
      return;
    }
    this.sql.transaction(() => {
      setMeta(this.sql, "namespace", id.namespace);
      setMeta(this.sql, "subject", id.subject);
    });
    this.identity = id;
  }

  protected async afterWrite(now: number): Promise<void> {
    await this.jobs.arm();
    if (getMeta(this.sql, "registered") === undefined && this.identity) {
      // Outside the transaction on purpose: the usage is already durable; if D1 fails, the next batch retries.
      try {
        await registerSubject(database(this.env.DB), this.identity.namespace, this.identity.subject, now);
        setMeta(this.sql, "registered", 1);
      } catch (e) {
        console.error("subject registration failed; will retry", e);
      }
    }
  }
}
