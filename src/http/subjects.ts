import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { database } from "../db/client";
import { deleteSubject, findSubject, listEverySubject, listSubjects, storedPeriods, upsertSubjects, type SubjectDetails, type SubjectRow } from "../db/subjects";
import type { Db } from "../db/client";
import { subjectKey } from "../domain/cloudevent";
import { renderSubject } from "../domain/subject";
import { iso } from "../domain/time";
import { requireScope } from "./auth";
import { ms } from "./entitlement-schemas";
import type { AppEnv } from "./context";
import { ApiError, errorResponses } from "./errors";
import { SubjectSchema } from "./schemas";

/**
 * OpenMeter's subjects: every subject that has sent an event is listed; clients may also upsert a
 * display name, metadata and a Stripe customer id (OpenMeter has deprecated these routes in favour of
 * customers, and its SDK still calls them). Deleting a subject removes it from the list with its
 * details; its usage stays with its Durable Object (queries by subject still answer), and an upsert
 * lists it again.
 */
export const subjects = new OpenAPIHono<AppEnv>();

const MAX_METADATA_BYTES = 16 * 1024;
/** One D1 query's worth of subjects: a page of `limit`, and a step of the whole list. */
const PAGE_SIZE = 1000;
/**
 * The whole list is held in the Worker (128 MB) twice over, as rows and as the JSON answer: with up to
 * 16 KB of metadata each, a row count alone would not bound it, so the JSON is capped too.
 */
const MAX_LISTED = 10_000;
const MAX_LISTED_CHARS = 16_000_000;

const SubjectUpsert = z
  .object({
    key: subjectKey,
    displayName: z.string().max(256).nullable().optional(),
    metadata: z
      .record(z.string(), z.unknown())
      .nullable()
      .optional()
      .refine((m) => m == null || JSON.stringify(m).length <= MAX_METADATA_BYTES, `at most ${MAX_METADATA_BYTES} bytes as JSON`),
    stripeCustomerId: z.string().max(256).nullable().optional(),
    // Deprecated in OpenMeter, which still stores and answers them: kept as given (to the millisecond).
    currentPeriodStart: z.iso.datetime({ offset: true }).optional(),
    currentPeriodEnd: z.iso.datetime({ offset: true }).optional(),
  })
  .openapi("SubjectUpsert");

const IdOrKey = z.object({ subjectIdOrKey: z.string().min(1).max(256) });

export function toSubjectApi(r: SubjectRow): z.infer<typeof SubjectSchema> {
  return renderSubject(r);
}

subjects.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects",
    summary: "List the subjects that have sent events or were upserted",
    description: `A subject appears here once its first event has been stored, or once it is upserted. Without parameters, every subject (as OpenMeter answers), up to ${MAX_LISTED.toLocaleString("en")}; past that, 400: page with \`after\` (the last key seen) and \`limit\`.`,
    tags: ["Subjects"],
    middleware: [requireScope("read")] as const,
    request: { query: z.object({ after: z.string().max(256).optional(), limit: z.coerce.number().int().min(1).max(PAGE_SIZE).optional() }) },
    responses: { 200: { description: "Subjects", content: { "application/json": { schema: z.array(SubjectSchema) } } }, ...errorResponses("bad_request", "validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const { after, limit } = c.req.valid("query");
    const db = database(c.env.DB);
    const namespace = c.get("principal").namespace;
    // OpenMeter's operation has no parameters and answers the whole array: a silent first page could
    // not be told from it. after/limit are edgemeter's own way to page past the cap.
    if (after === undefined && limit === undefined) {
      const rows = await listEverySubject(db, namespace, { maxRows: MAX_LISTED, maxChars: MAX_LISTED_CHARS, pageSize: PAGE_SIZE });
      if (rows === null) throw new ApiError("bad_request", `the namespace has more subjects than one answer holds (${MAX_LISTED.toLocaleString("en")}, or ${MAX_LISTED_CHARS / 1_000_000} MB of JSON): list them in pages with limit (at most ${PAGE_SIZE}) and after (the last key of the previous page)`);
      return c.json(rows.map(toSubjectApi), 200);
    }
    const rows = await listSubjects(db, namespace, after, limit ?? PAGE_SIZE);
    return c.json(rows.map(toSubjectApi), 200);
  },
);

subjects.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/subjects",
    summary: "Upsert subjects (OpenMeter, deprecated there)",
    description: "Creates each subject, or updates the fields given (a field left out keeps its value). At most 100 per request. currentPeriodStart and currentPeriodEnd (deprecated in OpenMeter) are RFC 3339 date-times, kept to the millisecond and answered back; a start after the end is refused (400), one given alone being compared with the stored other. A bad item stores none.",
    tags: ["Subjects"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: { "application/json": { schema: z.array(SubjectUpsert).min(1).max(100) } } } },
    responses: { 200: { description: "The subjects as stored", content: { "application/json": { schema: z.array(SubjectSchema) } } }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const keys = body.map((s) => s.key);
    const twice = keys.find((k, i) => keys.indexOf(k) !== i);
    if (twice !== undefined) throw new ApiError("validation_failed", `subject ${twice} is named twice`, { errors: [{ field: `${keys.lastIndexOf(twice)}.key`, message: "named twice in this request" }] });
    const db = database(c.env.DB);
    const namespace = c.get("principal").namespace;
    const now = Date.now();
    const items = body.map((s, i) => ({
      key: s.key,
      details: Object.fromEntries(
        Object.entries({
          displayName: s.displayName,
          metadata: s.metadata,
          stripeCustomerId: s.stripeCustomerId,
          currentPeriodStart: s.currentPeriodStart === undefined ? undefined : ms(s.currentPeriodStart, `${i}.currentPeriodStart`),
          currentPeriodEnd: s.currentPeriodEnd === undefined ? undefined : ms(s.currentPeriodEnd, `${i}.currentPeriodEnd`),
        }).filter(([, v]) => v !== undefined),
      ),
    }));
    await refuseReversedPeriods(db, namespace, items);
    return c.json((await upsertSubjects(db, namespace, items, now)).map(toSubjectApi), 200);
  },
);

/**
 * 400 when an item would leave its subject with currentPeriodStart after currentPeriodEnd. A field left
 * out keeps its stored value, so one given alone is compared with the stored other: answering 200 would
 * store a period that ends before it starts. Checked for every item before anything is written, so a
 * bad item stores none (the upsert is one D1 batch). Two concurrent upserts each giving one end can
 * still cross; nothing reads these deprecated fields, so no lock is taken for them.
 */
async function refuseReversedPeriods(db: Db, namespace: string, items: readonly { key: string; details: SubjectDetails }[]): Promise<void> {
  const alone = items.filter(({ details: d }) => (d.currentPeriodStart === undefined) !== (d.currentPeriodEnd === undefined));
  const stored = await storedPeriods(db, namespace, alone.map((it) => it.key));
  const errors = items.flatMap(({ key, details: d }, i) => {
    const start = d.currentPeriodStart ?? stored.get(key)?.start ?? null;
    const end = d.currentPeriodEnd ?? stored.get(key)?.end ?? null;
    if (start === null || end === null || start <= end) return [];
    if (d.currentPeriodEnd === undefined) return [{ field: `${i}.currentPeriodStart`, message: `after the subject's stored currentPeriodEnd (${iso(end)}); send both` }];
    if (d.currentPeriodStart === undefined) return [{ field: `${i}.currentPeriodEnd`, message: `before the subject's stored currentPeriodStart (${iso(start)}); send both` }];
    return [{ field: `${i}.currentPeriodStart`, message: "after currentPeriodEnd" }];
  });
  if (errors.length) throw new ApiError("validation_failed", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
}

subjects.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects/{subjectIdOrKey}",
    summary: "Get a subject by key or id",
    tags: ["Subjects"],
    middleware: [requireScope("read")] as const,
    request: { params: IdOrKey },
    responses: { 200: { description: "Subject", content: { "application/json": { schema: SubjectSchema } } }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const { subjectIdOrKey } = c.req.valid("param");
    const row = await findSubject(database(c.env.DB), c.get("principal").namespace, subjectIdOrKey);
    if (!row) throw new ApiError("not_found", `no subject ${subjectIdOrKey}`);
    return c.json(toSubjectApi(row), 200);
  },
);

subjects.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/subjects/{subjectIdOrKey}",
    summary: "Delete a subject's details (its usage stays)",
    tags: ["Subjects"],
    middleware: [requireScope("admin")] as const,
    request: { params: IdOrKey },
    responses: { 204: { description: "Deleted" }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const { subjectIdOrKey } = c.req.valid("param");
    const db = database(c.env.DB);
    const namespace = c.get("principal").namespace;
    const row = await findSubject(db, namespace, subjectIdOrKey);
    if (!row) throw new ApiError("not_found", `no subject ${subjectIdOrKey}`);
    await deleteSubject(db, namespace, row.key);
    return c.body(null, 204);
  },
);
