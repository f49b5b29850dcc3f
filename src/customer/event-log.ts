import type { MeterEvent } from "../domain/metering";
import { jsonChunks, type Sql } from "./sql";

/**
 * The ingest path's statements on the `events` table (the dedupe log), all set-based over one bound
 * JSON string of rows `[source, id, time, type, data, index]` (DESIGN invariant 5). jsonb_each reads
 * each row's values from the binary form without re-parsing the row's text (measured: less SQL time
 * per event than json_each in the Durable Object's SQLite).
 */
export type Row = [source: string, id: string, time: number, type: string, data: Record<string, unknown> | null, index: number];

/** Above this a batch's JSON is chunked again (production caps a bound string at 2 MB; jsonChunks' unit). */
export const MAX_WHOLE_JSON = 1_000_000;

/**
 * The most one event may take as a row (UTF-8), as much as a whole request may (LIMITS.bytesPerRequest).
 * JSON.stringify can write an event out longer than it was sent (1e20 becomes 100000000000000000000):
 * a 1 MiB request held a 4 MB event, which no chunking splits and production's 2 MB cap refuses.
 */
export const MAX_EVENT_BYTES = 1024 * 1024;

export const rowOf = (e: MeterEvent): Row => [e.source, e.id, e.time, e.type, e.data, e.index];

/** Stores the rows whose (source, id) is not stored yet; returns the rows written (a duplicate writes none). */
export function insertIgnoringStored(sql: Sql, chunks: Iterable<string>, now: number): number {
  let written = 0;
  for (const chunk of chunks) {
    written += sql.exec(
      `INSERT INTO events (source, id, time, type, data, ingested_at)
       SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ? FROM jsonb_each(jsonb(?)) WHERE true
       ON CONFLICT (source, id) DO NOTHING`,
      now,
      chunk,
    ).rowsWritten;
  }
  return written;
}

/**
 * The rows whose (source, id) is stored: their request indexes, or their positions in `json` (one chunk). Reads only.
 * The matches come back as one JSON array rather than a row each: one step of the cursor into JavaScript per chunk.
 */
export function storedIndexes(sql: Sql, chunks: Iterable<string>, by: "index" | "position" = "index"): Set<number> {
  const found = new Set<number>();
  const column = by === "index" ? "value->>5" : "key";
  for (const chunk of chunks) {
    const row = sql.one<{ found: string }>(
      `SELECT json_group_array(${column}) AS found FROM jsonb_each(jsonb(?)) WHERE EXISTS (SELECT 1 FROM events WHERE source = value->>0 AND id = value->>1)`,
      chunk,
    );
    for (const i of JSON.parse(row!.found) as number[]) found.add(i);
  }
  return found;
}

/** Positions in `ids` (a JSON array of ids, all of `source`) of the ids stored, as storedIndexes. Reads only. */
export function storedPositionsOfIds(sql: Sql, source: string, ids: string): Set<number> {
  const row = sql.one<{ found: string }>("SELECT json_group_array(key) AS found FROM jsonb_each(jsonb(?)) WHERE EXISTS (SELECT 1 FROM events WHERE source = ? AND id = value)", ids, source);
  return new Set(JSON.parse(row!.found) as number[]);
}

export const chunksOf = (events: readonly MeterEvent[]) => jsonChunks(events.map(rowOf));

const ROLLBACK = Symbol("rollback");

/**
 * Runs `fn` in a savepoint (a nested transaction) and keeps its writes only if it returns true. The
 * optimistic ingest paths write first and check after (rowsWritten): a wrong guess is undone here.
 */
export function keepIf(sql: Sql, fn: () => boolean): boolean {
  try {
    sql.transaction(() => {
      if (!fn()) throw ROLLBACK;
    });
    return true;
  } catch (e) {
    if (e !== ROLLBACK) throw e;
    return false;
  }
}
