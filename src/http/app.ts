import { OpenAPIHono } from "@hono/zod-openapi";
import { DrizzleQueryError } from "drizzle-orm/errors";
import { HTTPException } from "hono/http-exception";
import { StatementLimitError } from "../db/guard";
import { customerHealthName } from "../customer/client";
import { settings } from "../env";
import { authenticate, RATE_LIMIT_RETRY_AFTER_SECONDS } from "./auth";
import { allowedMethods } from "./allowed-methods";
import type { AppEnv } from "./context";
import { ApiError, problem, zodIssues } from "./errors";
import { check } from "./check";
import { debug } from "./debug";
import { entitlementHistory } from "./entitlement-history";
import { entitlements } from "./entitlements";
import { namespaceEntitlements } from "./entitlements-namespace";
import { events } from "./events";
import { features } from "./features";
import { grants } from "./grants";
import { keys } from "./keys";
import { meters } from "./meters";
import { channels } from "./notification-channels";
import { notificationEvents } from "./notification-events";
import { rules } from "./notification-rules";
import { isPortalQuery, portal } from "./portal";
import { query } from "./query";
import { reports } from "./reports";
import { subjects } from "./subjects";

export const app = new OpenAPIHono<AppEnv>({
  // Every validation failure of a declared route becomes the same problem+json, naming each field.
  defaultHook: (result) => {
    if (!result.success) {
      const errors = zodIssues(result.error);
      throw new ApiError("validation_failed", errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; "), { errors });
    }
  },
});

app.get("/healthz", (c) => c.json({ ok: true }));

// One no-op RPC to one fixed Durable Object (never a customer's): proves DOs answer, and is the
// floor that check/value latency is measured against (bench/latency.mjs). Unauthenticated and
// harmless: it reads and writes nothing, and load on it reaches only that one object.
app.get("/healthz/do", async (c) => {
  const started = performance.now();
  await c.env.CUSTOMER.get(c.env.CUSTOMER.idFromName(customerHealthName)).ping();
  return c.json({ ok: true, ms: performance.now() - started });
});

app.doc31("/openapi.json", {
  openapi: "3.1.0",
  info: {
    title: "edgemeter",
    version: "0.1.0",
    description: "Usage metering at the edge. Speaks OpenMeter's v1 API where it offers the same operation; see README for differences.",
  },
  security: [{ bearer: [] }],
});
app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });

// The portal query route authenticates consumer portal tokens itself (src/http/portal.ts); every other
// /api route takes API keys only.
// A plain condition rather than hono/combine's except(), which composes a middleware chain per request.
const authenticateApiKey = authenticate();
app.use("/api/*", (c, next) => (isPortalQuery(c.req.method, c.req.path) ? next() : authenticateApiKey(c, next)));
// A %-escape that is not two hex digits (%ZZ) or escapes that are not UTF-8 (%C0%AF, %ED%A0%80) name
// nothing: hono reads such a parameter as the raw text and URLSearchParams as U+FFFD, so
// `subject=%C0%AF` was the subject "%C0%AF" on one route and "��" (another subject's usage) on the next.
app.use("/api/*", async (c, next) => {
  if (c.req.url.includes("%")) {
    try {
      decodeURIComponent(c.req.url);
    } catch {
      throw new ApiError("bad_request", "the URL has a malformed %-escape: each % must be followed by two hex digits, and the escaped bytes must be UTF-8");
    }
  }
  await next();
});
// JSON bodies are gated by requireScope (auth.ts), after routing and the scope: never for an
// unauthenticated caller, an unknown path or method, or a key without the scope.
for (const routes of [keys, events, meters, query, reports, subjects, features, entitlements, entitlementHistory, namespaceEntitlements, grants, check, channels, rules, notificationEvents, portal, debug]) app.route("/", routes);

app.notFound((c) => {
  const path = new URL(c.req.url).pathname;
  // Matched as hono routes (the decoded path). A disabled bench route stays a plain 404.
  const hidden = c.req.path.startsWith("/bench/") && !settings(c.env).BENCH_PARSE_ONLY;
  const allow = hidden ? [] : allowedMethods(app.routes, c.req.path);
  if (allow.length === 0 || allow.includes(c.req.method)) return problem(c, "not_found", `no route for ${c.req.method} ${path}`);
  const res = problem(c, "method_not_allowed", `${c.req.method} is not allowed on ${path}; it answers ${allow.join(", ")}`);
  res.headers.set("allow", allow.join(", "));
  return res;
});

app.onError((err, c) => {
  if (err instanceof ApiError) {
    const res = problem(c, err.code, err.message, err.extensions);
    if (err.code === "retry_batch") res.headers.set("retry-after", "1");
    if (err.code === "rate_limited") res.headers.set("retry-after", String(RATE_LIMIT_RETRY_AFTER_SECONDS));
    return res;
  }
  if (err instanceof HTTPException) {
    // Hono's own parsers (e.g. malformed JSON bodies in declared routes) answer 400-class errors this way.
    const code = err.status === 400 ? "malformed_json" : err.status === 415 ? "unsupported_media_type" : err.status === 413 ? "payload_too_large" : "bad_request";
    return problem(c, code, err.message || "bad request");
  }
  if (err instanceof StatementLimitError) console.error("statement guard", err.message);
  // drizzle puts the bound parameters in the message: they can be signing secrets, custom header values
  // (e.g. a receiver's Authorization) or key hashes. Log the statement and the cause only.
  else if (err instanceof DrizzleQueryError) console.error("unhandled: failed query", err.query, String(err.cause));
  else console.error("unhandled", err);
  return problem(c, "internal", "an unexpected error occurred; nothing from this request is half stored — it may be retried");
});
