import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { cachedNamespaceConfig } from "../db/config";
import { database } from "../db/client";
import { customer, withConfig } from "../customer/client";
import type { FoldSpec } from "../domain/aggregate";
import { gatherWithinCap } from "./answer-size";
import { FILTER_LIMITS, filterProblem, FilterStringDoc, FilterStringSchema, type FilterString } from "../domain/group-filter";
import { inspectJson } from "../domain/json-input";
import type { MeterDef } from "../domain/meter";
import { iso, parseRfc3339 } from "../domain/time";
import { minuteOf } from "../domain/windows";
import { settings } from "../env";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ApiError, errorResponses, invalidField, zodIssues } from "./errors";
import { FreshnessSchema, namespaceQuery } from "./reports";
import { checkTimeZone, WindowSizeSchema, WindowTimeZoneSchema } from "./schemas";

const MAX_SUBJECTS_PER_QUERY = 100;

/** OpenMeter's MeterQueryRequest (POST body) — the GET form is read into the same shape. */
export const QueryRequest = z
  .object({
    from: z.string().optional(),
    to: z.string().optional(),
    windowSize: WindowSizeSchema.optional(),
    windowTimeZone: WindowTimeZoneSchema,
    subject: z.array(z.string().min(1).max(256)).max(MAX_SUBJECTS_PER_QUERY).optional(),
    groupBy: z.array(z.string().min(1).max(64)).max(21).optional(),
    filterGroupBy: z
      .record(z.string(), z.union([z.string(), z.array(z.string()).min(1).max(FILTER_LIMITS.values)]))
      .optional()
      .openapi({ description: "Exact match per group-by key; a list matches any of its values. GET: `filterGroupBy[key]=value`, repeated for a list." }),
    advancedMeterGroupByFilters: z
      .record(z.string(), FilterStringDoc)
      .optional()
      .openapi({ description: "OpenMeter's FilterString per group-by key (GET: one JSON object). See the README's meter query section for the operators' exact rules." }),
    filterCustomerId: z.array(z.string()).max(MAX_SUBJECTS_PER_QUERY).optional().openapi({ description: "Refused when given: edgemeter has no customers; filter by `subject`." }),
    clientId: z.string().max(36).optional(),
  })
  .openapi("MeterQueryRequest");
/** What is validated: QueryRequest with the recursive FilterString. */
const QueryInput = QueryRequest.extend({ advancedMeterGroupByFilters: z.record(z.string(), FilterStringSchema).optional() });
export type QueryRequest = z.output<typeof QueryInput>;

export const QueryRow = z
  .object({
    value: z.number(),
    windowStart: z.string(),
    windowEnd: z.string(),
    subject: z.string().nullable(),
    groupBy: z.record(z.string(), z.string().nullable()),
  })
  .openapi("MeterQueryRow");

export const QueryResult = z
  .object({
    from: z.string().optional(),
    to: z.string().optional(),
    windowSize: z.string().optional(),
    data: z.array(QueryRow),
    freshness: FreshnessSchema.optional().openapi({ description: "Namespace-wide answers (no `subject`) only: how current the D1 snapshots they come from are." }),
  })
  .openapi("MeterQueryResult");
export type QueryResult = z.output<typeof QueryResult>;

const REPEATED = new Set(["subject", "groupBy", "filterCustomerId"]);

/**
 * GET query string → MeterQueryRequest: repeated `subject`/`groupBy`/`filterCustomerId`, deepObject
 * `filterGroupBy[key]=value` (repeated: a list), `advancedMeterGroupByFilters` as one JSON object.
 */
export function fromSearchParams(params: URLSearchParams): unknown {
  const out: Record<string, unknown> = {};
  // A Map: on a plain object, filterGroupBy[constructor] found Object.prototype.constructor (a 500).
  const filter = new Map<string, string[]>();
  for (const [k, v] of params) {
    const m = /^filterGroupBy\[(.+)\]$/.exec(k);
    // A `__proto__` key is lost on the plain objects it passes through later (zod's record parsing
    // assigns it): the filter would silently vanish and the answer be unfiltered.
    if (m?.[1] === "__proto__") invalidField("filterGroupBy", "__proto__ is not a group by key of any meter");
    if (m) {
      const list = filter.get(m[1]!);
      if (list) list.push(v);
      else filter.set(m[1]!, [v]);
    } else if (REPEATED.has(k)) out[k] = [...((out[k] as string[] | undefined) ?? []), v];
    else if (k === "advancedMeterGroupByFilters") out[k] = jsonParam(k, v, out[k]);
    else out[k] = v;
  }
  if (filter.size) out.filterGroupBy = Object.fromEntries([...filter].map(([k, vs]) => [k, vs.length === 1 ? vs[0]! : vs]));
  return out;
}

/** A query parameter whose content is JSON (OpenAPI `content: application/json`), given once. */
function jsonParam(name: string, text: string, earlier: unknown): unknown {
  if (earlier !== undefined) invalidField(name, "give it once, as one JSON object");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    invalidField(name, `is not valid JSON: ${(e as Error).message}`);
  }
  const problem = inspectJson(value);
  if (problem) invalidField(problem.path ? `${name}.${problem.path}` : name, problem.message);
  return value;
}

/** Checks a query against its meter and turns it into the fold the DOs run. */
export function foldSpec(meter: MeterDef, q: QueryRequest, now: number): FoldSpec {
  checkTimeZone(q.windowTimeZone);
  const at = (v: string | undefined, field: string) => {
    if (v === undefined) return null;
    const t = parseRfc3339(v);
    return t === null ? invalidField(field, "must be an RFC 3339 date-time") : t;
  };
  const from = at(q.from, "from");
  const to = at(q.to, "to") ?? now;
  if (from !== null && from >= to) invalidField("from", "must be before to");
  const keys = Object.keys(meter.groupBy);
  for (const g of q.groupBy ?? []) if (g !== "subject" && !keys.includes(g)) invalidField("groupBy", `${g} is not a group by key of meter ${meter.slug} (it has: ${keys.join(", ") || "none"})`);
  if (q.filterCustomerId?.length) invalidField("filterCustomerId", "edgemeter has no customers: filter by subject instead");
  const filters: [string, FilterString][] = [];
  for (const [k, v] of Object.entries(q.filterGroupBy ?? {})) filters.push([k, typeof v === "string" ? { $eq: v } : { $in: v }]);
  for (const [k, f] of Object.entries(q.advancedMeterGroupByFilters ?? {})) filters.push([k, f]);
  for (const [field, list] of [["filterGroupBy", q.filterGroupBy], ["advancedMeterGroupByFilters", q.advancedMeterGroupByFilters]] as const) {
    for (const g of Object.keys(list ?? {})) if (!keys.includes(g)) invalidField(field, `${g} is not a group by key of meter ${meter.slug}`);
  }
  const tooMuch = filterProblem(filters);
  if (tooMuch) invalidField("advancedMeterGroupByFilters", tooMuch);
  return {
    aggregation: meter.aggregation,
    // Storage is in whole minutes: the range widens to the minutes it touches (echoed in the answer).
    from: from === null ? null : minuteOf(from),
    to: minuteOf(to - 1) + 60_000,
    windowSize: q.windowSize ?? null,
    windowTimeZone: q.windowTimeZone,
    groupBy: (q.groupBy ?? []).filter((g) => g !== "subject"),
    filters,
  };
}

export async function findMeterDef(c: Context<AppEnv>, idOrSlug: string): Promise<MeterDef> {
  const config = await cachedNamespaceConfig(database(c.env.DB), c.get("principal").namespace, settings(c.env).CONFIG_CACHE_SECONDS);
  const meter = config.meters.find((m) => m.slug === idOrSlug || m.id === idOrSlug);
  if (!meter) throw new ApiError("not_found", `no meter ${idOrSlug}`);
  return meter;
}

/** Exact per-subject answers from each subject's Durable Object (read-your-writes). */
export async function querySubjects(c: Context<AppEnv>, meter: MeterDef, spec: FoldSpec, subjects: readonly string[]): Promise<QueryResult["data"]> {
  const namespace = c.get("principal").namespace;
  const config = await cachedNamespaceConfig(database(c.env.DB), namespace, settings(c.env).CONFIG_CACHE_SECONDS);
  const parts = await gatherWithinCap(subjects, (subject, maxRows) =>
    withConfig(config, (cfg) => customer(c.env, { namespace, subject }).query({ namespace, subject }, cfg, meter.id, spec, maxRows)),
  );
  return parts
    .flatMap((rows, i) => rows.map((r) => ({ value: r.value, windowStart: iso(r.windowStart), windowEnd: iso(r.windowEnd), subject: subjects[i]!, groupBy: r.groupBy })))
    .sort((a, b) => (a.windowStart < b.windowStart ? -1 : a.windowStart > b.windowStart ? 1 : 0));
}

export function respond(c: Context<AppEnv>, spec: FoldSpec, data: QueryResult["data"], extra: Record<string, unknown> = {}): Response {
  const result = {
    ...(spec.from !== null ? { from: iso(spec.from) } : {}),
    to: iso(spec.to),
    ...(spec.windowSize ? { windowSize: spec.windowSize } : {}),
    data,
    ...extra,
  };
  if ((c.req.header("accept") ?? "").toLowerCase().includes("text/csv")) {
    return new Response(toCsv(spec.groupBy, data), { headers: { "content-type": "text/csv; charset=utf-8" } });
  }
  return c.json(result, 200);
}

/**
 * Subjects and group-by values come from event data, which end users often shape. A text cell starting
 * with = + - @, tab or carriage return is a formula to Excel, LibreOffice and Google Sheets, where a
 * billing team opens these exports: such cells get a leading ' (OWASP's "CSV injection" advice), which
 * spreadsheets show as text. Numbers are written as numbers.
 */
function csvField(v: string | number | null): string {
  if (v === null) return "";
  const s = typeof v === "number" ? String(v) : /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(groupBy: readonly string[], data: QueryResult["data"]): string {
  const lines = [["window_start", "window_end", "subject", ...groupBy, "value"].map(csvField).join(",")];
  for (const r of data) lines.push([r.windowStart, r.windowEnd, r.subject, ...groupBy.map((g) => r.groupBy[g] ?? null), r.value].map(csvField).join(","));
  return lines.join("\r\n") + "\r\n";
}

export const query = new OpenAPIHono<AppEnv>();

const responses = {
  200: {
    description: "Usage; `Accept: text/csv` answers CSV (window_start, window_end, subject, group-by keys…, value)",
    content: { "application/json": { schema: QueryResult }, "text/csv": { schema: z.string() } },
  },
  ...errorResponses("bad_request", "validation_failed", "unauthenticated", "forbidden", "not_found"),
};
const params = z.object({ meterIdOrSlug: z.string().min(1).max(64) });
const description =
  "With `subject`: each subject's exact usage, read from its own Durable Object (read-your-writes). Without `subject`: the whole namespace, from the D1 snapshots every Durable Object flushes (see `freshness`); `groupBy=subject` keeps subjects apart (otherwise `subject` is null), `from`/`to` widen to 15-minute boundaries, and `windowSize=MINUTE` is refused.";

/** A MeterQueryRequest, or 400 naming each bad field. */
export function parseQueryRequest(raw: unknown): QueryRequest {
  const parsed = QueryInput.safeParse(raw);
  if (!parsed.success) {
    const errors = zodIssues(parsed.error);
    throw new ApiError("validation_failed", errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; "), { errors });
  }
  return parsed.data;
}

async function handle(c: Context<AppEnv>, raw: unknown): Promise<Response> {
  const q = parseQueryRequest(raw);
  const meter = await findMeterDef(c, c.req.param("meterIdOrSlug")!);
  const spec = foldSpec(meter, q, Date.now());
  const subjects = q.subject;
  if (!subjects?.length) return namespaceQuery(c, meter, spec, q.groupBy?.includes("subject") ?? false, respond);
  return respond(c, spec, await querySubjects(c, meter, spec, [...new Set(subjects)]));
}

query.openAPIRegistry.registerPath(
  createRoute({ method: "get", path: "/api/v1/meters/{meterIdOrSlug}/query", summary: "Query a meter (OpenMeter-compatible)", description, tags: ["Meters"], request: { params, query: QueryRequest }, responses }),
);
query.openAPIRegistry.registerPath(
  createRoute({
    method: "post",
    path: "/api/v1/meters/{meterIdOrSlug}/query",
    summary: "Query a meter (OpenMeter-compatible, body form)",
    description,
    tags: ["Meters"],
    request: { params, body: { required: true, content: { "application/json": { schema: QueryRequest } } } },
    responses,
  }),
);
query.get("/api/v1/meters/:meterIdOrSlug/query", requireScope("read"), (c) => handle(c, fromSearchParams(new URL(c.req.url).searchParams)));
query.post("/api/v1/meters/:meterIdOrSlug/query", requireScope("read"), async (c) => {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new ApiError("malformed_json", "the body is not valid JSON");
  }
  return handle(c, body);
});
