import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";
import { guardD1 } from "./guard";

export type Db = ReturnType<typeof build>;

const build = (d1: D1Database) => drizzle(guardD1(d1), { schema });

// Building drizzle walks the whole schema (extractTablesRelationalConfig): ~1% of an ingest request's
// CPU when done per request. The binding lives as long as the isolate, so one instance per binding;
// it holds no request-bound I/O object (statements are created per call).
const instances = new WeakMap<D1Database, Db>();

/** drizzle over the guarded D1 binding: every statement is checked against D1's production limits. */
export function database(d1: D1Database): Db {
  let db = instances.get(d1);
  if (!db) instances.set(d1, (db = build(d1)));
  return db;
}
