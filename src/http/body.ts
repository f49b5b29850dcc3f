import type { MiddlewareHandler } from "hono";
import { inspectJson } from "../domain/json-input";
import type { AppEnv } from "./context";
import { ApiError } from "./errors";

// One decoder for every request: a decode() without `stream` starts afresh, and constructing one
// per request was a tenth of a small request's body handling (profile of check).
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Reads a request body as text, refusing (413) past `maxBytes` without buffering more than that,
 * whether or not the client sent Content-Length.
 */
export async function readCappedText(req: Request, maxBytes: number): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    throw new ApiError("payload_too_large", `the body is ${declared} bytes; at most ${maxBytes} are accepted per request`);
  }
  const coding = req.headers.get("content-encoding")?.trim().toLowerCase();
  if (coding && coding !== "identity") {
    throw new ApiError("unsupported_media_type", `Content-Encoding ${JSON.stringify(coding.slice(0, 64))} is not supported: send the body uncompressed`);
  }
  if (!req.body) return "";
  // Framed by Content-Length (at most maxBytes, checked above; workerd holds the body to it): read
  // whole in one native call. Chunk by chunk cost ~1 ms more per 1,000-event request (41 reads of
  // ~4 KB; docs/performance.md). An earlier "Cannot perform I/O on behalf of a different request"
  // under load was the config cache sharing a pending D1 read (src/db/config.ts), not this read.
  let bytes: Uint8Array;
  try {
    bytes = declared !== null && /^\d+$/.test(declared) ? new Uint8Array(await req.arrayBuffer()) : await readChunks(req.body, maxBytes);
  } catch (e) {
    if (e instanceof ApiError) throw e;
    // Malformed chunked framing, or a client that went away mid-body: the request's fault, not ours.
    throw new ApiError("bad_request", "the body could not be read: its chunked framing is malformed, or the connection closed before it ended");
  }
  if (bytes.byteLength > maxBytes) throw new ApiError("payload_too_large", `the body exceeds ${maxBytes} bytes, the most accepted per request`);
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new ApiError("malformed_json", "the body is not valid UTF-8");
  }
}

/** A body of unknown length (chunked), read only as far as `maxBytes`. */
async function readChunks(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new ApiError("payload_too_large", `the body exceeds ${maxBytes} bytes, the most accepted per request`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}

export function parseJson(text: string): unknown {
  if (text.trim() === "") throw new ApiError("malformed_json", "the body is empty");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError("malformed_json", `the body is not valid JSON: ${(e as Error).message}`);
  }
}

/** The media type without parameters, lower-cased; only a utf-8 charset parameter is allowed. */
export function mediaType(header: string | null | undefined): string | null {
  if (!header) return null;
  const [type, ...params] = header.split(";").map((p) => p.trim().toLowerCase());
  for (const p of params) {
    const [k, v] = p.split("=").map((x) => x.trim().replace(/^"|"$/g, ""));
    if (k === "charset" && v !== "utf-8" && v !== "utf8") return null;
  }
  return type || null;
}

/** JSON media types: application/json and application/<anything>+json. */
const JSON_MEDIA = /^application\/(?:[a-z0-9.!#$&^_-]+\+)?json$/;

/**
 * The one gate for JSON request bodies of routes that declare them through zod (ingest reads its own,
 * per CloudEvents media types). Without it the route validators read any media type as "no body"
 * (400 naming every required field), decode invalid UTF-8 to U+FFFD and store it, accept any size,
 * and let zod drop `__proto__` keys silently. Here: 415 unless JSON in UTF-8, 413 past `maxBytes`,
 * 400 for invalid UTF-8, malformed JSON or a shape `inspectJson` refuses. A request without a body
 * and without a Content-Type passes: the route decides whether it needs one.
 */
export function jsonBody(opts: { maxBytes: number; skip: (path: string) => boolean }): MiddlewareHandler<AppEnv> {
  return async function jsonBodyMiddleware(c, next) {
    const method = c.req.method;
    if ((method !== "POST" && method !== "PUT" && method !== "PATCH") || opts.skip(c.req.path)) return next();
    const header = c.req.header("content-type");
    const type = mediaType(header);
    if (header === undefined && (c.req.raw.body === null || c.req.header("content-length") === "0")) return next();
    if (type === null || !JSON_MEDIA.test(type)) {
      throw new ApiError("unsupported_media_type", `send the body as application/json (optionally ; charset=utf-8)${header ? `, not ${header.slice(0, 100)}` : ""}`);
    }
    const text = await readCappedText(c.req.raw, opts.maxBytes);
    if (text.trim() !== "") {
      const parsed = parseJson(text);
      const problem = inspectJson(parsed);
      if (problem) {
        const field = problem.path || "body";
        throw new ApiError("validation_failed", `${field}: ${problem.message}`, { errors: [{ field, message: problem.message }] });
      }
      // The route's validator reads the body through c.req.json(), which would parse the text again.
      c.req.json = <T>() => Promise.resolve(parsed as T);
    }
    // The stream is consumed: c.req.text() takes hono's cached text, and a copy of the request just
    // to carry the text cost more than parsing it. hono keeps promises in bodyCache (its type says
    // the value); every JSON route's test reads it.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    await next();
  };
}
