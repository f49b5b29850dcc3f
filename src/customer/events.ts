import { setMeta, getMeta } from "./schema";
import type { Sql } from "./sql";

export interface EventListQuery {
  /** Event time, inclusive; `to` null: no upper bound. */
  from: number;
  to: number | null;
  /** Ingestion time, inclusive; null: no bound. */
  ingestedFrom: number | null;
  ingestedTo: number | null;
  /** A part of the event id (OpenMeter's "accepts partial ID"), case-sensitive; null: any id. */
  idContains: string | null;
  limit: number;
}

export interface StoredEvent {
  source: string;
  id: string;
  time: number;
  type: string;
  data: string | null;
  ingestedAt: number;
}

/** Newest first. The log has no index on time on purpose: an index would double the rows written per event. */
export function listEvents(sql: Sql, q: EventListQuery): StoredEvent[] {
  const where = ["time >= ?"];
  const params: SqlStorageValue[] = [q.from];
  const bound = (condition: string, value: SqlStorageValue | null) => {
    if (value === null) return;
    where.push(condition);
    params.push(value);
  };
  bound("time <= ?", q.to);
  bound("ingested_at >= ?", q.ingestedFrom);
  bound("ingested_at <= ?", q.ingestedTo);
  // instr, not LIKE: ids may hold % and _, and production caps a LIKE pattern at 50 bytes (ids run to 256).
  bound("instr(id, ?) > 0", q.idContains);
  return sql
    .all<{ source: string; id: string; time: number; type: string; data: string | null; ingested_at: number }>(
      `SELECT source, id, time, type, data, ingested_at FROM events WHERE ${where.join(" AND ")} ORDER BY time DESC, ingested_at DESC LIMIT ?`,
      ...params,
      q.limit,
    )
    .map((r) => ({ source: r.source, id: r.id, time: r.time, type: r.type, data: r.data, ingestedAt: r.ingested_at }));
}

/**
 * Deletes events older than `cutoff` (minute-aligned) by scanning: reads cost ~1,000× less than
 * writes, so a scan beats keeping a second index. Records the watermark re-metering relies on:
 * every event before it is gone, every event after it is still here. Returns the events left.
 */
export function pruneEvents(sql: Sql, cutoff: number): number {
  sql.transaction(() => {
    sql.exec("DELETE FROM events WHERE time < ?", cutoff);
    const before = Number(getMeta<number>(sql, "pruned_before") ?? 0);
    if (cutoff > before) setMeta(sql, "pruned_before", cutoff);
  });
  return sql.one<{ n: number }>("SELECT count(*) AS n FROM events")?.n ?? 0;
}
