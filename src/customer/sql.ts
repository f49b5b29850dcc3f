import { checkStatement } from "../db/guard";

/**
 * The Durable Object's SQLite, with production's statement limits checked on every call
 * (100 bound parameters, 100 KB of text): the local runtime does not enforce them.
 */
export class Sql {
  constructor(readonly storage: DurableObjectStorage) {}

  exec<T extends Record<string, SqlStorageValue>>(query: string, ...params: SqlStorageValue[]): SqlStorageCursor<T> {
    checkStatement(query, params.length);
    return this.storage.sql.exec<T>(query, ...params);
  }

  all<T extends Record<string, SqlStorageValue>>(query: string, ...params: SqlStorageValue[]): T[] {
    return this.exec<T>(query, ...params).toArray();
  }

  one<T extends Record<string, SqlStorageValue>>(query: string, ...params: SqlStorageValue[]): T | undefined {
    return this.exec<T>(query, ...params).toArray()[0];
  }

  /** Runs `fn` as one synchronous transaction: all of it is written, or none. */
  transaction<T>(fn: () => T): T {
    return this.storage.transactionSync(fn);
  }
}

/**
 * Splits rows into JSON strings for `json_each(?)`, each below `maxBytes` (production caps a bound
 * string at 2 MB), so a set-based statement never meets the limit however large the set.
 */
export function* jsonChunks(rows: readonly unknown[], maxBytes = 1_000_000): Generator<string> {
  let parts: string[] = [];
  let size = 2;
  for (const row of rows) {
    const s = JSON.stringify(row);
    if (parts.length > 0 && size + s.length + 1 > maxBytes) {
      yield `[${parts.join(",")}]`;
      parts = [];
      size = 2;
    }
    parts.push(s);
    size += s.length + 1;
  }
  if (parts.length > 0) yield `[${parts.join(",")}]`;
}
