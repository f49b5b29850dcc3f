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

// Lives in domain/ so that src/db can chunk D1 statements the same way.
export { jsonChunks } from "../domain/chunks";
