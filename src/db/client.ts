import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";
import { guardD1 } from "./guard";

export type Db = ReturnType<typeof database>;

/** drizzle over the guarded D1 binding: every statement is checked against D1's production limits. */
export function database(d1: D1Database) {
  return drizzle(guardD1(d1), { schema });
}
