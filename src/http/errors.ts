import type { Context } from "hono";
import { z } from "@hono/zod-openapi";

/**
 * The one error table: every error the API can answer, its HTTP status and title.
 * It drives both the runtime responses (RFC 9457 problem+json) and the OpenAPI error schema.
 * `code` is stable: clients may switch on it; `detail` is for humans and may change.
 */
export const problems = {
  bad_request: { status: 400, title: "Bad Request" },
  validation_failed: { status: 400, title: "Validation Failed" },
  invalid_events: { status: 400, title: "Invalid Events" },
  malformed_json: { status: 400, title: "Malformed JSON" },
  unauthenticated: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  not_found: { status: 404, title: "Not Found" },
  method_not_allowed: { status: 405, title: "Method Not Allowed" },
  conflict: { status: 409, title: "Conflict" },
  payload_too_large: { status: 413, title: "Payload Too Large" },
  unsupported_media_type: { status: 415, title: "Unsupported Media Type" },
  rate_limited: { status: 429, title: "Too Many Requests" },
  internal: { status: 500, title: "Internal Server Error" },
  retry_batch: { status: 503, title: "Service Unavailable" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof problems;

export class ApiError extends Error {
  constructor(
    readonly code: ProblemCode,
    detail: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(detail);
  }
}

/** 400 validation_failed naming one field, in the shape zod's failures get (defaultHook in app.ts). */
export function invalidField(field: string, message: string): never {
  throw new ApiError("validation_failed", `${field}: ${message}`, { errors: [{ field, message }] });
}

export function problemBody(code: ProblemCode, detail: string, instance: string, extensions: Record<string, unknown> = {}) {
  const { status, title } = problems[code];
  return { type: `urn:edgemeter:problem:${code}`, title, status, detail, instance, code, ...extensions };
}

export function problem(c: Context, code: ProblemCode, detail: string, extensions: Record<string, unknown> = {}) {
  // Absolute (the request's URL without its query): OpenMeter's spec declares `instance` a `format: uri`,
  // which a bare path is not.
  const url = new URL(c.req.url);
  const body = problemBody(code, detail, url.origin + url.pathname, extensions);
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { "content-type": "application/problem+json" },
  });
}

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: "urn:edgemeter:problem:validation_failed" }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    code: z.enum(Object.keys(problems) as [ProblemCode, ...ProblemCode[]]),
  })
  .passthrough()
  .openapi("Problem");

/** OpenAPI `responses` entries for the given error codes, all sharing the one Problem schema. */
export function errorResponses(...codes: ProblemCode[]) {
  const out: Record<number, { description: string; content: { "application/problem+json": { schema: typeof ProblemSchema } } }> = {};
  for (const code of codes) {
    const { status, title } = problems[code];
    out[status] = { description: out[status] ? `${out[status].description}; ${title}` : title, content: { "application/problem+json": { schema: ProblemSchema } } };
  }
  return out;
}

/** zod issues → `[{ field, message }]`, the shape every 400 carries in `errors`. */
export function zodIssues(error: z.ZodError, prefix = "") {
  return error.issues.map((i) => ({
    field: prefix + (i.path.length ? i.path.map(String).join(".") : ""),
    message: i.message,
  }));
}
