import { checkStatement } from "../db/guard";

/** Rows the statements of this Durable Object instance read and wrote: what Cloudflare bills for DO SQLite. */
export interface SqlCounters {
  statements: number;
  rowsRead: number;
  rowsWritten: number;
  /** setAlarm() calls: Cloudflare bills each as one row written (DO pricing, SQLite storage backend). */
  alarmsSet: number;
}

/** What readsFirst lets run outside a transaction. */
const READS = /^\s*SELECT\b/i;
const NEEDS_TRANSACTION = Symbol("needs a transaction");

// Cursors are counted once their statement is done; this many may wait (bounds memory if a caller
// abandons cursors outside transactions).
const MAX_OPEN_CURSORS = 256;

/**
 * The Durable Object's SQLite, with production's statement limits checked on every call
 * (100 bound parameters, 100 KB of text): the local runtime does not enforce them. It also sums the
 * cursors' rowsRead/rowsWritten (every index entry counts, as billed) into per-instance counters for
 * the benchmark's cost model (`GET /api/v1/debug/subjects/{subject}/storage`).
 */
export class Sql {
  readonly counters: SqlCounters = { statements: 0, rowsRead: 0, rowsWritten: 0, alarmsSet: 0 };
  // A cursor's figures grow while it is iterated, so it is counted when its transaction ends (or
  // when the counters are read), not when exec() returns.
  private open: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];
  private depth = 0;
  private readOnly = false;

  constructor(readonly storage: DurableObjectStorage) {}

  exec<T extends Record<string, SqlStorageValue>>(query: string, ...params: SqlStorageValue[]): SqlStorageCursor<T> {
    checkStatement(query, params);
    if (this.readOnly && !READS.test(query)) throw NEEDS_TRANSACTION;
    const cursor = this.storage.sql.exec<T>(query, ...params);
    this.counters.statements++;
    if (this.open.length >= MAX_OPEN_CURSORS) this.settle();
    this.open.push(cursor as unknown as SqlStorageCursor<Record<string, SqlStorageValue>>);
    return cursor;
  }

  all<T extends Record<string, SqlStorageValue>>(query: string, ...params: SqlStorageValue[]): T[] {
    return this.exec<T>(query, ...params).toArray();
  }

  one<T extends Record<string, SqlStorageValue>>(query: string, ...params: SqlStorageValue[]): T | undefined {
    return this.exec<T>(query, ...params).toArray()[0];
  }

  /**
   * Transactions rolled back so far (savepoints included). Memory that mirrors stored rows (e.g. the
   * due times in jobs.ts) is dropped when this moves: a write it remembered may have been undone.
   */
  rollbacks = 0;

  private memos = new Map<string, unknown>();
  private memosAt = 0;

  /**
   * A value read from storage, kept across statements and RPCs until a writer `forget`s its key (or a
   * prefix of it). Every memo is dropped when a transaction rolls back, since the rows it was read
   * from, or the writes made to it in place, may have been undone. The hot path's reads of
   * entitlements, grants and fired thresholds go through here (docs/performance.md).
   */
  memo<T>(key: string, load: () => T): T {
    const memos = this.validMemos();
    if (memos.has(key)) return memos.get(key) as T;
    const value = load();
    memos.set(key, value);
    return value;
  }

  /** The memo under `key`, without loading it. */
  peek<T>(key: string): T | undefined {
    return this.validMemos().get(key) as T | undefined;
  }

  private validMemos(): Map<string, unknown> {
    if (this.memosAt !== this.rollbacks) {
      this.memos.clear();
      this.memosAt = this.rollbacks;
    }
    return this.memos;
  }

  /** Drops the memos whose key starts with `prefix`: call it next to the write that changes their rows. */
  forget(prefix: string): void {
    for (const key of this.memos.keys()) if (key.startsWith(prefix)) this.memos.delete(key);
  }

  /** Runs `fn` as one synchronous transaction: all of it is written, or none. */
  transaction<T>(fn: () => T): T {
    if (this.readOnly) throw NEEDS_TRANSACTION;
    this.depth++;
    try {
      return this.storage.transactionSync(fn);
    } catch (e) {
      this.rollbacks++;
      throw e;
    } finally {
      if (--this.depth === 0) this.settle();
    }
  }

  /**
   * Runs `fn` without a transaction while it only reads (SELECT); at its first other statement or
   * nested transaction, before that runs, it is stopped, its memory is dropped as after a rollback,
   * and it runs again as one transaction. A transaction costs the runtime ~80 µs even with no
   * statement in it, and a quota decision usually reads only memos (docs/performance.md, row 20).
   * Nothing outside SQL may be changed by `fn` before its first write: it may run twice.
   */
  readsFirst<T>(fn: () => T): T {
    if (this.depth > 0 || this.readOnly) return fn();
    this.readOnly = true;
    try {
      return fn();
    } catch (e) {
      this.rollbacks++;
      if (e !== NEEDS_TRANSACTION) throw e;
    } finally {
      this.readOnly = false;
    }
    return this.transaction(fn);
  }

  /** The counters so far, with every cursor opened until now included. */
  snapshot(): SqlCounters {
    this.settle();
    return { ...this.counters };
  }

  private settle(): void {
    for (const c of this.open) {
      this.counters.rowsRead += c.rowsRead;
      this.counters.rowsWritten += c.rowsWritten;
    }
    this.open = [];
  }
}

// Lives in domain/ so that src/db can chunk D1 statements the same way.
export { jsonChunks } from "../domain/chunks";
