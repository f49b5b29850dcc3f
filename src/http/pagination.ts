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

/** A repeated or comma-less query parameter read as a list (`?rule=a&rule=b`). */
export const listParam = (max: number) =>
  z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]))
    .refine((v) => v.length <= max, `at most ${max} values`);
