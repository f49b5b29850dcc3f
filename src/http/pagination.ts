import { z } from "@hono/zod-openapi";

/** OpenMeter's page/pageSize parameters and paginated envelope. */
export const PageQuery = z.object({
  page: z.coerce.number().int().min(1).default(1),
  pageSize: z.coerce.number().int().min(1).max(1000).default(100),
});

export function paginated<T extends z.ZodType>(item: T, name: string) {
  return z.object({ totalCount: z.number().int(), page: z.number().int(), pageSize: z.number().int(), items: z.array(item) }).openapi(name);
}

export function page<T>(all: readonly T[], p: { page: number; pageSize: number }) {
  const start = (p.page - 1) * p.pageSize;
  return { totalCount: all.length, page: p.page, pageSize: p.pageSize, items: all.slice(start, start + p.pageSize) };
}

/**
 * Lists that OpenMeter answers either way: with `page` or `pageSize`, its paginated envelope; with
 * neither, a plain array of `offset`/`limit`. `max` bounds a page and a limit alike.
 */
export const pageOrRange = (max: number, defaultLimit: number) => ({
  ...optionalPage(max, "With page or pageSize the answer is paginated."),
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(max).default(defaultLimit),
});

/** page and pageSize without defaults, for lists whose answer differs when neither is given. */
export const optionalPage = (max: number, note: string) => ({
  page: z.coerce.number().int().min(1).optional().openapi({ description: `Page index (from 1). ${note}` }),
  pageSize: z.coerce.number().int().min(1).max(max).optional().openapi({ description: "Items per page (default 100)." }),
});

export interface PageOrRange {
  page?: number;
  pageSize?: number;
  offset: number;
  limit: number;
}

/** The rows an optionalPage query asks for; null when it names no page. */
export function pageRange(q: { page?: number; pageSize?: number }): { offset: number; limit: number } | null {
  if (q.page === undefined && q.pageSize === undefined) return null;
  const size = q.pageSize ?? 100;
  return { offset: ((q.page ?? 1) - 1) * size, limit: size };
}

/** Which rows a pageOrRange query asks for. */
export function rangeOf(q: PageOrRange): { offset: number; limit: number } {
  return pageRange(q) ?? { offset: q.offset, limit: q.limit };
}

/** The answer to a pageOrRange query, given the rows of its range and how many match in all. */
export function pageOrArray<T>(q: PageOrRange, items: T[], totalCount: number) {
  if (q.page === undefined && q.pageSize === undefined) return items;
  return { totalCount, page: q.page ?? 1, pageSize: q.pageSize ?? 100, items };
}

/** A repeated or comma-less query parameter read as a list (`?rule=a&rule=b`). */
export const listParam = (max: number) =>
  z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]))
    .refine((v) => v.length <= max, `at most ${max} values`);

/** OpenMeter's `order` and `orderBy` list parameters; left out, each list applies its own default. */
export const sortQuery = <K extends string>(keys: readonly [K, ...K[]], note: string) => ({
  order: z.enum(["ASC", "DESC"]).optional().openapi({ description: "ASC or DESC." }),
  orderBy: z.enum(keys).optional().openapi({ description: note }),
});

/** Rows sorted by `key`, ties broken by id, both in `order`. */
export function sortRows<T extends { id: string }>(rows: readonly T[], key: (r: T) => string | number, order: "ASC" | "DESC"): T[] {
  const sign = order === "DESC" ? -1 : 1;
  const cmp = (a: string | number, b: string | number) => (a < b ? -1 : a > b ? 1 : 0);
  return [...rows].sort((a, b) => sign * (cmp(key(a), key(b)) || cmp(a.id, b.id)));
}
