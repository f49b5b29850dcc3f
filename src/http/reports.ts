import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { database } from "../db/client";
import { cachedNamespaceConfig } from "../db/config";
import { groupByValues, meterSubjects, retentionDaysFrom, snapshotExtent, snapshotFreshness, snapshotUsage } from "../db/reports";
import { foldBuckets, type Bucket, type FoldSpec } from "../domain/aggregate";
import type { MeterDef } from "../domain/meter";
import { GRANULE_MS, granuleOf, overdueAfterMs, planWindows } from "../domain/rollup";
import { iso, parseRfc3339 } from "../domain/time";
import { settings } from "../env";
import { answerTooLarge, MAX_ANSWER_ROWS } from "./answer-size";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ApiError, errorResponses, invalidField } from "./errors";
// Types only: query.ts imports this module, so a value import back would be a cycle.
import type { QueryResult } from "./query";

/**
 * Namespace-wide reporting from D1 snapshots (every subject at once), next to the per-subject
 * answers that come from each customer's Durable Object. Snapshot rows cover 15 minutes, so the
 * range widens to the quarter hours it touches (echoed in `from`/`to`), MINUTE windows are refused,
 * and HOUR/DAY/MONTH windows are exact in every zone whose offsets are whole quarter hours.
 */

/** Added to the flush interval for the flush's own duration and alarm scheduling. */
const FLUSH_MARGIN_MS = 10_000;

export const FreshnessSchema = z
  .object({
    completeBefore: z.string().openapi({
      description:
        "Every event acknowledged (2xx) before this instant is included: now − intervalSeconds − 10 s, moved earlier to the last flush of any subject whose Durable Object still had changes to send, and to the first stored usage of any subject that has not flushed yet although it should have.",
    }),
    intervalSeconds: z.number().int().openapi({ description: "SNAPSHOT_INTERVAL_SECONDS: how long after its first unflushed change a customer's Durable Object flushes to D1." }),
    pendingSubjects: z.number().int().openapi({ description: "Subjects that owe D1 a flush: their last flush left more to send (the next follows within seconds), or they have not flushed since their first write (usage, or an entitlement created before any usage: those flush when the cron nudges them)." }),
    overdueSubjects: z.number().int().openapi({ description: "Subjects whose flush is late (the cron nudges them every few minutes); 0 when snapshots keep up." }),
  })
  .openapi("SnapshotFreshness");
export type Freshness = z.output<typeof FreshnessSchema>;

/** The first UTC day whose day rows a report may read (src/db/reports.ts retentionDaysFrom). */
const daysFromOf = (c: Context<AppEnv>) => retentionDaysFrom(Date.now(), settings(c.env).SNAPSHOT_RETENTION_DAYS);

type Respond = (c: Context<AppEnv>, spec: FoldSpec, data: QueryResult["data"], extra: Record<string, unknown>) => Response;

/**
 * `GET|POST /api/v1/meters/{slug}/query` without `subject`: the whole namespace, from D1. `spec` is
 * the per-subject fold spec (already validated); `bySubject` is `groupBy` containing `subject`.
 */
export async function namespaceQuery(c: Context<AppEnv>, meter: MeterDef, spec: FoldSpec, bySubject: boolean, respond: Respond): Promise<Response> {
  if (spec.windowSize === "MINUTE") {
    invalidField("windowSize", "MINUTE windows are answered per subject only (add subject=…); namespace-wide answers come from 15-minute snapshot rows");
  }
  const from = spec.from === null ? null : granuleOf(spec.from);
  const to = granuleOf(spec.to - 1) + GRANULE_MS;
  const namespace = c.get("principal").namespace;
  const db = database(c.env.DB);
  const intervalSeconds = settings(c.env).SNAPSHOT_INTERVAL_SECONDS;
  const now = Date.now();
  const nominal = now - intervalSeconds * 1000 - FLUSH_MARGIN_MS;

  // Freshness is read before the rows: whatever flush lands in between, the rows are at least as fresh as claimed.
  const [state, extent] = await Promise.all([
    snapshotFreshness(db, namespace, now - overdueAfterMs(intervalSeconds)),
    snapshotExtent(db, namespace, meter.id, from, to),
  ]);
  const plan = planWindows({ from, to, windowSize: spec.windowSize, timeZone: spec.windowTimeZone, extent });
  if (!plan.ok) invalidField("windowTimeZone", `${plan.reason}; namespace-wide answers fold 15-minute snapshot rows, so query this zone per subject (subject=…)`);
  const partials = await snapshotUsage(
    db,
    {
      namespace, meterId: meter.id, aggregation: meter.aggregation, groupBy: spec.groupBy, bySubject, filters: spec.filters,
      daysFrom: daysFromOf(c),
    },
    plan.windows,
    MAX_ANSWER_ROWS,
  );
  if (partials === null) answerTooLarge();

  // D1 has folded each (window, subject, group) already; foldBuckets turns those into values and window ends
  // exactly as per-subject answers are made. A distinct count arrives as `count`, hence COUNT for UNIQUE_COUNT.
  const foldSpec: FoldSpec = {
    ...spec,
    aggregation: meter.aggregation === "UNIQUE_COUNT" ? "COUNT" : meter.aggregation,
    from: spec.windowSize ? from : (plan.windows[0]?.start ?? from),
    to,
    filters: [],
  };
  const bySubjectKey = new Map<string | null, Bucket[]>();
  for (const p of partials) {
    const w = plan.windows[p.win]!;
    const list = bySubjectKey.get(p.subject) ?? [];
    list.push({ minute: w.start, group_key: p.grp, sum: p.sum, count: p.count, min: p.min, max: p.max, latest_at: p.latest_at, latest: p.latest });
    bySubjectKey.set(p.subject, list);
  }
  const data: QueryResult["data"] = [];
  for (const [subject, buckets] of bySubjectKey) {
    buckets.sort((a, b) => a.minute - b.minute);
    for (const r of foldBuckets(foldSpec, buckets)) data.push({ value: r.value, windowStart: iso(r.windowStart), windowEnd: iso(r.windowEnd), subject, groupBy: r.groupBy });
  }
  data.sort((a, b) => cmp(a.windowStart, b.windowStart) || cmp(a.subject ?? "", b.subject ?? "") || cmp(JSON.stringify(a.groupBy), JSON.stringify(b.groupBy)));

  const completeBefore = Math.min(nominal, state.oldestPendingAsOf ?? Infinity);
  const freshness: Freshness = { completeBefore: iso(completeBefore), intervalSeconds, pendingSubjects: state.pending, overdueSubjects: state.overdue };
  const res = respond(c, { ...spec, from, to }, data, { freshness });
  // CSV has no room for it in the body.
  res.headers.set("Edgemeter-Complete-Before", freshness.completeBefore);
  return res;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

async function meterOf(c: Context<AppEnv>, idOrSlug: string): Promise<MeterDef> {
  const config = await cachedNamespaceConfig(database(c.env.DB), c.get("principal").namespace, settings(c.env).CONFIG_CACHE_SECONDS);
  const meter = config.meters.find((m) => m.slug === idOrSlug || m.id === idOrSlug);
  if (!meter) throw new ApiError("not_found", `no meter ${idOrSlug}`);
  return meter;
}

function instant(v: string | undefined, field: string, fallback: number): number {
  if (v === undefined) return fallback;
  const t = parseRfc3339(v);
  return t === null ? invalidField(field, "must be an RFC 3339 date-time") : t;
}

const Params = z.object({ meterIdOrSlug: z.string().min(1).max(64) });
const Range = z.object({
  from: z.string().optional().openapi({ description: "RFC 3339, inclusive." }),
  to: z.string().optional().openapi({ description: "RFC 3339, inclusive. Defaults to now." }),
});
const strings = { "application/json": { schema: z.array(z.string()) } };
const SNAPSHOT_NOTE =
  "Read from the D1 snapshots, so a subject or value appears once its customer's Durable Object has flushed (SNAPSHOT_INTERVAL_SECONDS after its first event), and the range widens to the 15-minute snapshot rows it touches.";

export const reports = new OpenAPIHono<AppEnv>();

reports.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/meters/{meterIdOrSlug}/subjects",
    summary: "List meter subjects (OpenMeter-compatible)",
    description: `The subjects with usage of the meter between \`from\` (default: the beginning) and \`to\`. ${SNAPSHOT_NOTE}`,
    tags: ["Meters"],
    middleware: [requireScope("read")] as const,
    request: { params: Params, query: Range },
    responses: { 200: { description: "Subject keys, sorted", content: strings }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const meter = await meterOf(c, c.req.valid("param").meterIdOrSlug);
    const q = c.req.valid("query");
    const from = instant(q.from, "from", 0);
    const to = instant(q.to, "to", Date.now());
    if (from > to) invalidField("from", "must not be after to");
    return c.json(await meterSubjects(database(c.env.DB), c.get("principal").namespace, meter.id, granuleOf(from), to, daysFromOf(c)), 200);
  },
);

reports.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values",
    summary: "List meter group by values (OpenMeter-compatible)",
    description: `The distinct values of one of the meter's group-by keys (or \`subject\`) between \`from\` (default: 24 hours ago) and \`to\`. ${SNAPSHOT_NOTE}`,
    tags: ["Meters"],
    middleware: [requireScope("read")] as const,
    request: { params: Params.extend({ groupByKey: z.string().min(1).max(64) }), query: Range },
    responses: { 200: { description: "Values, sorted", content: strings }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const { meterIdOrSlug, groupByKey } = c.req.valid("param");
    const meter = await meterOf(c, meterIdOrSlug);
    const q = c.req.valid("query");
    const now = Date.now();
    const from = granuleOf(instant(q.from, "from", now - 86_400_000));
    const to = instant(q.to, "to", now);
    if (from > to) invalidField("from", "must not be after to");
    const db = database(c.env.DB);
    const namespace = c.get("principal").namespace;
    if (groupByKey === "subject") return c.json(await meterSubjects(db, namespace, meter.id, from, to, daysFromOf(c)), 200);
    const keys = Object.keys(meter.groupBy);
    if (!keys.includes(groupByKey)) invalidField("groupByKey", `${groupByKey} is not a group by key of meter ${meter.slug} (it has: ${keys.join(", ") || "none"})`);
    return c.json(await groupByValues(db, namespace, meter.id, groupByKey, from, to, daysFromOf(c)), 200);
  },
);
