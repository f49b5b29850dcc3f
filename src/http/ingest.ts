import { cachedNamespaceConfig, type NamespaceConfig } from "../db/config";
import { database } from "../db/client";
import { customer, withConfig } from "../customer/client";
import type { IngestResult } from "../customer/do";
import { prepareBatch } from "../customer/batch";
import { LIMITS, validateEvents, type CloudEvent } from "../domain/cloudevent";
import { MeterSet, type MeterEvent } from "../domain/metering";
import { settings, type Env } from "../env";
import { mediaType, parseJson, readCappedText } from "./body";
import { ApiError } from "./errors";

const SINGLE = "application/cloudevents+json";
const BATCH = "application/cloudevents-batch+json";
const JSON_TYPE = "application/json";

/** Reads an ingest body per OpenMeter's content types, and validates every event (whole request or nothing). */
export async function readEvents(req: Request): Promise<ValidBatch> {
  const type = mediaType(req.headers.get("content-type"));
  // Binary mode is told by its headers; a CloudEvents media type means structured mode whatever else is sent.
  if (req.headers.has("ce-specversion") && type !== SINGLE && type !== BATCH) return validated([await binaryEvent(req, type)]);
  if (type !== SINGLE && type !== BATCH && type !== JSON_TYPE) {
    throw new ApiError("unsupported_media_type", `send events as ${SINGLE}, ${BATCH} or ${JSON_TYPE} (optionally ; charset=utf-8)`);
  }
  const body = parseJson(await readCappedText(req, LIMITS.bytesPerRequest));
  let items: unknown[];
  if (Array.isArray(body)) {
    if (type === SINGLE) throw new ApiError("validation_failed", `${SINGLE} carries one event (a JSON object); send arrays as ${BATCH}`);
    items = body;
  } else {
    if (type === BATCH) throw new ApiError("validation_failed", `${BATCH} carries a JSON array of events`);
    items = [body];
  }
  if (items.length === 0) throw new ApiError("validation_failed", "the batch contains no events");
  if (items.length > LIMITS.eventsPerRequest) {
    throw new ApiError("payload_too_large", `the batch has ${items.length} events; at most ${LIMITS.eventsPerRequest} are accepted per request`);
  }
  return validated(items);
}

/**
 * CloudEvents HTTP binding, binary content mode (what the CloudEvents SDKs' HTTP emitters send by
 * default): the attributes are `ce-<name>` headers, percent-encoded, the body is the data and
 * Content-Type its media type. Becomes the same event object a structured request carries, so every
 * check applies to it alike.
 */
async function binaryEvent(req: Request, type: string | null): Promise<Record<string, unknown>> {
  const event: Record<string, unknown> = {};
  const refuse = (name: string, message: string) => {
    throw new ApiError("validation_failed", `header ${name}: ${message}`, { errors: [{ field: name, message }] });
  };
  for (const [name, value] of req.headers) {
    if (!name.startsWith("ce-")) continue;
    // Fetch joins a repeated header with ", ". A sender following the binding percent-encodes
    // spaces, so a literal ", " means the attribute was sent twice: which one is meant is unknown.
    if (value.includes(", ")) refuse(name, "sent more than once, or not percent-encoded (a space is sent as %20)");
    let decoded = "";
    try {
      decoded = decodeURIComponent(value);
    } catch {
      refuse(name, "not valid percent-encoding");
    }
    // defineProperty: an attribute named __proto__ must become a key that the checks then refuse,
    // not a prototype assignment that silently drops it.
    Object.defineProperty(event, name.slice(3), { value: decoded, enumerable: true, writable: true, configurable: true });
  }
  const text = await readCappedText(req, LIMITS.bytesPerRequest);
  if (text.trim() === "") return event;
  if (type !== JSON_TYPE) {
    throw new ApiError("unsupported_media_type", `a binary-mode event's data must be JSON (Content-Type application/json)${type ? `, not ${type.slice(0, 100)}` : ""}`);
  }
  event.data = parseJson(text);
  event.datacontenttype = req.headers.get("content-type");
  return event;
}

function validated(items: unknown[]): ValidBatch {
  const { events, times, issues } = validateEvents(items);
  if (issues.length > 0) {
    // The detail names the first few faults so a human sees what is wrong; `errors` lists up to 100.
    const first = issues.slice(0, 3).map((i) => `event ${i.index}${i.field ? ` ${i.field}` : ""}: ${i.message}`);
    const more = issues.length > first.length ? `; and ${issues.length - first.length} more in errors` : "";
    throw new ApiError("invalid_events", `${new Set(issues.map((i) => i.index)).size} of ${items.length} events are invalid; nothing was stored (${first.join("; ")}${more})`, {
      errors: issues.slice(0, 100),
    });
  }
  return { events, times };
}

/** Valid events with their times (epoch ms, NaN when the event has none), parsed once by validateEvents. */
export interface ValidBatch {
  events: readonly CloudEvent[];
  times: readonly number[];
}

// Compiled once per definition set (configs are cached per isolate, so the object is reused).
const meterSets = new WeakMap<NamespaceConfig, { version: number; set: MeterSet }>();
function meterSetOf(config: NamespaceConfig): { version: number; set: MeterSet } {
  let m = meterSets.get(config);
  if (!m) meterSets.set(config, (m = { version: config.version, set: new MeterSet(config.meters) }));
  return m;
}

export interface IngestReply {
  accepted: number;
  duplicates: number;
  rejected: { index: number; id: string; source: string; reason: string }[];
}

/**
 * One RPC per subject, in parallel. Each subject's DO commits its share atomically; if any fails the
 * client is told to resend the whole batch, which is safe because stored events deduplicate.
 */
export async function ingestEvents(env: Env, namespace: string, { events, times }: ValidBatch, now = Date.now()): Promise<IngestReply> {
  const bySubject = new Map<string, MeterEvent[]>();
  for (let index = 0; index < events.length; index++) {
    const e = events[index]!;
    let list = bySubject.get(e.subject);
    if (!list) bySubject.set(e.subject, (list = []));
    const time = times[index]!;
    list.push({ index, id: e.id, source: e.source, type: e.type, time: Number.isNaN(time) ? now : time, data: e.data ?? null });
  }
  const config = await cachedNamespaceConfig(database(env.DB), namespace, settings(env).CONFIG_CACHE_SECONDS);
  const results = await Promise.allSettled(
    [...bySubject].map(([subject, list]) => {
      const batch = prepareBatch(list, meterSetOf(config));
      return withConfig(config, (cfg) => customer(env, { namespace, subject }).ingest({ namespace, subject }, cfg, batch));
    }),
  );
  const reply: IngestReply = { accepted: 0, duplicates: 0, rejected: [] };
  const failed = results.filter((r) => r.status === "rejected");
  if (failed.length > 0) {
    console.error("ingest: subject calls failed", failed.map((f) => String((f as PromiseRejectedResult).reason)));
    throw new ApiError("retry_batch", `${failed.length} of ${results.length} subjects could not be reached; resend the whole batch: events already stored are recognised as duplicates and counted once`);
  }
  for (const r of results as PromiseFulfilledResult<IngestResult>[]) {
    reply.accepted += r.value.accepted;
    reply.duplicates += r.value.duplicates;
    reply.rejected.push(...r.value.rejected);
  }
  reply.rejected.sort((a, b) => a.index - b.index);
  return reply;
}
