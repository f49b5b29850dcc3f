import { ApiError } from "./errors";

/**
 * Reads a request body as text, refusing (413) past `maxBytes` without buffering more than that,
 * whether or not the client sent Content-Length.
 */
export async function readCappedText(req: Request, maxBytes: number): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    throw new ApiError("payload_too_large", `the body is ${declared} bytes; at most ${maxBytes} are accepted per request`);
  }
  if (!req.body) return "";
  const reader = req.body.getReader();
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
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(all);
  } catch {
    throw new ApiError("malformed_json", "the body is not valid UTF-8");
  }
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
