// Puts one sweep request on the wire exactly as built (fuzz.e2e.test.ts judges the answer): bytes with
// the Content-Type asked for (or none), chunked when asked, and paths with dot segments unresolved.
import { request } from "node:http";

export interface Outgoing {
  method: string;
  /** Path and query, already percent-encoded as they go on the wire. */
  url: string;
  body?: Uint8Array;
  /** undefined: application/json; null: no Content-Type at all. */
  contentType?: string | null;
  headers?: Record<string, string>;
  /** Send the body as a stream, so it goes chunked, without Content-Length. */
  chunked?: boolean;
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** Sends `r` to the gateway with `token` as its bearer key; throws when no answer comes (a closed connection). */
export async function transmit(gw: { baseUrl: string; port: number }, r: Outgoing, token: string | null): Promise<Answer> {
  const headers: Record<string, string> = { ...r.headers };
  if (token) headers.authorization = `Bearer ${token}`;
  // Bytes, never a string: fetch would add text/plain to a string body without a Content-Type.
  const body = r.body;
  if (body !== undefined && r.contentType !== null) headers["content-type"] = r.contentType ?? "application/json";
  const init: RequestInit & { duplex?: "half" } = { method: r.method, headers, body: body as BodyInit | undefined };
  if (r.chunked && body) {
    const half = body.length >> 1;
    init.body = new ReadableStream({ start: (c) => (c.enqueue(body.slice(0, half)), c.enqueue(body.slice(half)), c.close()) });
    init.duplex = "half";
  }
  // fetch resolves dot segments (also %2E%2E) before sending, so "/meters/../subjects" would reach
  // another route; those go out verbatim over node:http.
  const res = /\/(\.|%2e){1,2}(\/|\?|$)/i.test(r.url) ? await verbatim(gw.port, r.method, r.url, headers, body) : await fetch(gw.baseUrl + r.url, init);
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

/** One request with its path exactly as given (no dot-segment resolution), answered as a Response. */
function verbatim(port: number, method: string, path: string, headers: Record<string, string>, body?: Uint8Array): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : v);
        resolve(new Response(res.statusCode === 204 || method === "HEAD" ? null : Buffer.concat(chunks), { status: res.statusCode, headers: h }));
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}
