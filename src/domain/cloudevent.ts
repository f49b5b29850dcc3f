import { z } from "zod";
import { inspectJson, isWellFormedText, MAX_JSON_DEPTH, type JsonProblem } from "./json-input";
import { parseRfc3339 } from "./time";

/** Chosen limits (README "Limits"): generous for real ids (UUIDs, ULIDs, URLs), small enough to keep keys cheap. */
export const LIMITS = {
  idLength: 256,
  sourceLength: 256,
  subjectLength: 256,
  typeLength: 256,
  eventsPerRequest: 1000,
  bytesPerRequest: 1024 * 1024,
} as const;

// CloudEvents 1.0 "Type System", String: control characters (U+0000–U+001F, U+007F–U+009F) and
// unpaired surrogates are not allowed. Refusing them also keeps ids and subjects exact in SQLite
// (a NUL or a lone surrogate does not survive as UTF-8 text) and in Durable Object names.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTENT_TYPE = /^application\/(cloudevents\+)?json(\s*;.*)?$/i;
const attr = (max: number) =>
  z
    .string()
    .min(1, "must be a non-empty string")
    .max(max, `must be at most ${max} characters`)
    .refine((s) => !CONTROL.test(s), "must not contain control characters (CloudEvents String)")
    .refine(isWellFormedText, "must be well-formed Unicode: it contains an unpaired UTF-16 surrogate");

/** A subject key as events, entitlements and portal tokens name it. */
export const subjectKey = attr(LIMITS.subjectLength);

/**
 * CloudEvents 1.0 (JSON format) as OpenMeter accepts it: required id, source, specversion "1.0",
 * type and subject; optional time (RFC 3339) and data (a JSON object). Optional attributes may be null
 * (CloudEvents JSON format §3.1); extension attributes (see extensionIssue) pass through untouched.
 */
export const cloudEventSchema = z.looseObject({
  id: attr(LIMITS.idLength),
  source: attr(LIMITS.sourceLength),
  specversion: z.literal("1.0", { error: 'must be "1.0"' }),
  type: attr(LIMITS.typeLength),
  subject: attr(LIMITS.subjectLength),
  time: z
    .string()
    .refine((t) => parseRfc3339(t) !== null, "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    .nullish(),
  // A refine, not .regex(): the OpenAPI generator writes a flagged regex as "…$/i", a pattern nothing matches.
  datacontenttype: z
    .string()
    .refine((s) => CONTENT_TYPE.test(s), "only application/json data is accepted")
    .describe("application/json or application/cloudevents+json (any case), optionally with parameters")
    .nullish(),
  dataschema: z.string().min(1).nullish(),
  data: z.record(z.string(), z.unknown(), { error: "must be a JSON object" }).nullish(),
}).superRefine((e, ctx) => {
  const issue = extensionIssue(e);
  if (issue) ctx.addIssue({ code: "custom", path: [issue.path], message: issue.message });
});
export type CloudEvent = z.output<typeof cloudEventSchema>;

export interface EventIssue {
  index: number;
  field: string;
  message: string;
}

/**
 * Validates every event; the request is accepted only when this returns no issues. `times[i]` is
 * event i's time in epoch ms (NaN when it has none), parsed here once for the whole ingest path.
 */
export function validateEvents(items: readonly unknown[]): { events: CloudEvent[]; times: number[]; issues: EventIssue[] } {
  const events: CloudEvent[] = [];
  const times: number[] = [];
  const issues: EventIssue[] = [];
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      issues.push({ index, field: "", message: "an event must be a JSON object" });
      continue;
    }
    const time = plainEventTime(item as Record<string, unknown>);
    if (time !== null) {
      // The usual event: the checks below are the schema's, applied without zod's copying.
      const shape = plainShape(item, 1) ? null : inspectJson(item);
      if (shape) issues.push({ index, field: shape.path, message: shape.message });
      else {
        events.push(item as CloudEvent);
        times.push(time);
      }
      continue;
    }
    const r = cloudEventSchema.safeParse(item);
    if (!r.success) {
      for (const i of r.error.issues) issues.push({ index, field: i.path.map(String).join(".") || "", message: i.message });
      continue;
    }
    // On the raw item: zod's output has already dropped a top-level `__proto__` key of `data`.
    const shape = inspectJson(item);
    if (shape) issues.push({ index, field: shape.path, message: shape.message });
    else {
      events.push(r.data);
      times.push(r.data.time ? parseRfc3339(r.data.time)! : NaN);
    }
  }
  return { events, times, issues };
}

/** Printable ASCII only: neither control characters nor surrogates, so one test settles most attributes. */
const PRINTABLE_ASCII = /^[\u0020-\u007e]*$/;
const attrOk = (v: unknown, max: number): boolean =>
  typeof v === "string" && v.length >= 1 && v.length <= max && (PRINTABLE_ASCII.test(v) || (!CONTROL.test(v) && isWellFormedText(v)));

/**
 * True when `cloudEventSchema` surely accepts the event, decided without zod: zod's parse of 1,000
 * events (and its copy of each) was the largest cost of an ingest request (docs/performance.md).
 * Only a yes is trusted: anything else goes through the schema, which also words the errors.
 * For such an event the schema's output equals the input (a loose object passes through; `data` is
 * a plain object of a JSON body), so the input is used as is. test/domain/cloudevent-fast.test.ts
 * checks the two agree.
 */
export const plainEvent = (e: Record<string, unknown>): boolean => plainEventTime(e) !== null;

/** plainEvent's answer with the time it parsed on the way: epoch ms, NaN without a time, null for "not surely valid". */
function plainEventTime(e: Record<string, unknown>): number | null {
  if (e.specversion !== "1.0") return null;
  if (!attrOk(e.id, LIMITS.idLength) || !attrOk(e.source, LIMITS.sourceLength) || !attrOk(e.type, LIMITS.typeLength) || !attrOk(e.subject, LIMITS.subjectLength)) return null;
  const { time, datacontenttype, dataschema, data } = e;
  let at = NaN;
  if (time != null) {
    if (typeof time !== "string") return null;
    const parsed = parseRfc3339(time);
    if (parsed === null) return null;
    at = parsed;
  }
  if (datacontenttype != null && (typeof datacontenttype !== "string" || !CONTENT_TYPE.test(datacontenttype))) return null;
  if (dataschema != null && (typeof dataschema !== "string" || dataschema.length === 0)) return null;
  if (data != null && (typeof data !== "object" || Array.isArray(data) || Object.getPrototypeOf(data) !== Object.prototype)) return null;
  for (const key in e) if (!CONTEXT_ATTRIBUTES.has(key) && !extensionOk(key, e[key])) return null;
  return at;
}

/** The JSON format's members that are not extension attributes (data_base64 is refused by extensionIssue). */
const CONTEXT_ATTRIBUTES = new Set(["id", "source", "specversion", "type", "subject", "time", "datacontenttype", "dataschema", "data"]);
const EXTENSION_NAME = /^[a-z0-9]+$/;
const extensionOk = (name: string, value: unknown): boolean =>
  EXTENSION_NAME.test(name) && (value === null || (typeof value === "string" && !CONTROL.test(value)) || typeof value === "boolean" || (typeof value === "number" && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31));

/**
 * CloudEvents 1.0: an attribute name is lower-case ASCII letters and digits, and an extension's value
 * is a boolean, an integer or a string (JSON format §2.2). The CloudEvents SDKs, and OpenMeter
 * through sdk-go, refuse other events; storing them would keep attributes no reader can use.
 */
function extensionIssue(e: Record<string, unknown>): JsonProblem | null {
  for (const key of Object.keys(e)) {
    // inspectJson words a `__proto__` key the same way wherever it is.
    if (CONTEXT_ATTRIBUTES.has(key) || key === "__proto__") continue;
    if (key === "data_base64") return { path: key, message: "binary data is not accepted: send data as a JSON object" };
    if (!EXTENSION_NAME.test(key)) return { path: key, message: "is not a CloudEvents attribute name (lower-case ASCII letters and digits only)" };
    if (!extensionOk(key, e[key])) return { path: key, message: "an extension attribute must be a string (without control characters), a 32-bit integer or a boolean" };
  }
  return null;
}

/**
 * True when inspectJson surely finds nothing in `v`: the same rules (depth, well-formed strings and
 * keys, finite numbers, no `__proto__` key) as a plain walk, without inspectJson's bookkeeping of where a problem is.
 * Recursion is bounded by the depth limit (at most MAX_JSON_DEPTH + 1 frames). On false, inspectJson
 * runs and words the problem.
 */
function plainShape(v: unknown, depth: number): boolean {
  if (typeof v === "string") return isWellFormedText(v);
  if (typeof v === "number") return Number.isFinite(v);
  if (typeof v !== "object" || v === null) return true;
  if (depth > MAX_JSON_DEPTH) return false;
  if (Array.isArray(v)) {
    for (const x of v) if (!plainShape(x, depth + 1)) return false;
    return true;
  }
  for (const key of Object.keys(v)) {
    if (key === "__proto__" || !isWellFormedText(key) || !plainShape((v as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}
