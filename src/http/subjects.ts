import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { database } from "../db/client";
import { listSubjects } from "../db/subjects";
import { iso } from "../domain/time";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { errorResponses } from "./errors";
import { SubjectSchema } from "./schemas";

export const subjects = new OpenAPIHono<AppEnv>();

subjects.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects",
    summary: "List the subjects that have sent events",
    description: "A subject appears here once its first event has been stored. Page with `after` (the last key seen) and `limit`.",
    tags: ["Subjects"],
    middleware: [requireScope("read")] as const,
    request: { query: z.object({ after: z.string().max(256).optional(), limit: z.coerce.number().int().min(1).max(1000).default(1000) }) },
    responses: { 200: { description: "Subjects", content: { "application/json": { schema: z.array(SubjectSchema) } } }, ...errorResponses("unauthenticated", "forbidden") },
  }),
  async (c) => {
    const { after, limit } = c.req.valid("query");
    const rows = await listSubjects(database(c.env.DB), c.get("principal").namespace, after, limit);
    return c.json(
      rows.map((r) => ({ id: r.id, key: r.key, displayName: null, metadata: null, createdAt: iso(r.createdAt), updatedAt: iso(r.createdAt) })),
      200,
    );
  },
);
