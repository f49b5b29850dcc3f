import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { customer } from "../customer/client";
import { LIMITS } from "../domain/cloudevent";
import { settings } from "../env";
import { authenticate, requireScope, ROOT_NAMESPACE } from "./auth";
import { jsonBody, parseJson, readCappedText } from "./body";
import { sha256 } from "../domain/ids";
import { inspectJson } from "../domain/json-input";
import { CheckRequest, decide } from "./check";
import type { AppEnv } from "./context";
import { ApiError, errorResponses } from "./errors";

/**
 * Operator routes behind the benchmarks (`npm run bench`, bench/README in the main README's
 * Performance section): what a customer's Durable Object stores and what its SQL has cost, and
 * opt-in bench routes: a parse-only handler that measures what the runtime itself allows, and probes
 * that each do one part of a check (bench/check-anatomy.mjs).
 */
export const debug = new OpenAPIHono<AppEnv>();

const StorageStatsSchema = z
  .object({
    databaseSize: z.number().int().openapi({ description: "Bytes of the Durable Object's SQLite database (ctx.storage.sql.databaseSize)." }),
    events: z.number().int().openapi({ description: "Events retained (the dedupe log)." }),
    buckets: z.number().int().openapi({ description: "Minute buckets kept." }),
    statements: z.number().int().openapi({ description: "SQL statements run by this instance of the Durable Object." }),
    rowsRead: z.number().int().openapi({ description: "Rows read by those statements (the cursors' rowsRead; billed)." }),
    rowsWritten: z.number().int().openapi({ description: "Rows written by those statements, index entries included (rowsWritten; billed)." }),
    alarmsSet: z.number().int().openapi({ description: "setAlarm() calls of this instance (each billed as one row written)." }),
    alarms: z.number().int().openapi({ description: "Alarm invocations of this instance (each billed as one request)." }),
    instanceStartedAt: z.number().int().openapi({ description: "Epoch ms this instance started; the counters restart with a new instance." }),
  })
  .openapi("StorageStats");

debug.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/debug/subjects/{subject}/storage",
    summary: "Storage size and SQL cost counters of a subject's Durable Object",
    description:
      "For operators and the benchmarks: the database size, retained events and buckets, and the rows read and written by this " +
      "instance of the subject's Durable Object since it started (counters live in memory and restart with the instance).",
    tags: ["Debug"],
    middleware: [requireScope("admin")] as const,
    request: { params: z.object({ subject: z.string().min(1).max(256) }) },
    responses: {
      200: { description: "Stats", content: { "application/json": { schema: StorageStatsSchema } } },
      ...errorResponses("unauthenticated", "forbidden", "not_found"),
    },
  }),
  async (c) => {
    const { subject } = c.req.valid("param");
    const id = { namespace: c.get("principal").namespace, subject };
    const stats = await customer(c.env, id).storageStats(id);
    if (!stats) throw new ApiError("not_found", `subject ${subject} is unknown: it has neither events nor entitlements`);
    return c.json(stats, 200);
  },
);

// The ceiling the benchmark reports ingest against: the same runtime, socket and body reading as
// POST /api/v1/events, then only JSON.parse and an answer. A route of this Worker rather than a
// separate one so that it goes through exactly the same runtime path (wrangler dev's proxy or serve's
// direct socket) with no second build to keep in step. The bench routes are off unless
// BENCH_PARSE_ONLY is set (never in production): parse-only and check-rpc are unauthenticated and
// would let anyone burn CPU.
const benchOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (!settings(c.env).BENCH_PARSE_ONLY) throw new ApiError("not_found", `no route for ${c.req.method} ${c.req.path}`);
  await next();
};

debug.post("/bench/parse-only", benchOnly, async (c) => {
  const body = parseJson(await readCappedText(c.req.raw, LIMITS.bytesPerRequest));
  return c.json({ events: Array.isArray(body) ? body.length : 1 }, 202);
});

// A check taken apart (bench/check-anatomy.mjs): the same authentication and body gate as every /api
// route, without routing, validation or a Durable Object; then the check's RPC alone, without the
// HTTP side. Each answers a fixed or the object's own result, so that the bench can tell what each
// part of POST /api/v1/check adds to the no-op round trip.
const probeKey = authenticate();
const probeBody = jsonBody({ maxBytes: LIMITS.bytesPerRequest, skip: () => false });
debug.get("/bench/authenticated", benchOnly, probeKey, (c) => c.json({ ok: true }));
debug.post("/bench/authenticated", benchOnly, probeKey, probeBody, (c) => c.json({ ok: true }));
debug.get("/bench/check-rpc", benchOnly, async (c) => {
  const subject = c.req.query("subject");
  const feature = c.req.query("feature");
  if (!subject || !feature) throw new ApiError("validation_failed", "the subject and feature query parameters are required");
  c.set("principal", { namespace: ROOT_NAMESPACE, scopes: ["read"], keyId: "bench", root: false });
  const id = { namespace: ROOT_NAMESPACE, subject };
  return c.json(await decide(c, id, { feature, amount: 1, event: null }), 200);
});

// What one step of a check costs in this runtime, repeated n times inside one request and timed from
// outside (bench/unit-costs.mjs): workerd's clock stands still while JavaScript runs, and the V8
// profile overstates small functions on the request path.
const CHECK_BODY = JSON.stringify({ subject: "customer-1", feature: "tokens", amount: 1 });
const UNITS: Record<string, () => unknown> = {
  resolved: () => Promise.resolve(1),
  json: () => parseJson(CHECK_BODY),
  inspect: () => inspectJson(JSON.parse(CHECK_BODY)),
  zod: () => CheckRequest.safeParseAsync(JSON.parse(CHECK_BODY)),
  digest: () => sha256("em_0123456789abcdefghijklmnopqrstuvwxyzABCDEF"),
};
debug.get("/bench/repeat", benchOnly, async (c) => {
  const unit = UNITS[c.req.query("what") ?? ""];
  const n = Number(c.req.query("n"));
  if (!unit || !Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw new ApiError("validation_failed", `what is one of ${Object.keys(UNITS).join(", ")}; n is 1 to 1,000,000`);
  }
  for (let i = 0; i < n; i++) await unit();
  return c.json({ n }, 200);
});
