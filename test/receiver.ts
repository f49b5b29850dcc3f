/**
 * A webhook receiver for the workerd suite. It runs in Node (the vitest process), wired in as the
 * Worker's outbound service, so every `fetch` the gateway makes lands here instead of the network.
 * Behaviour is chosen by the URL: https://receiver.test/hooks/<name>?fail=N&status=S&gone=1&slowMs=T&retryAfter=R
 *   fail=N      the first N deliveries answer `status` (default 500), later ones 204
 *   gone=1      always 410 Gone
 *   slowMs=T    wait T ms before answering
 * A path containing /stalled-body/ answers 200 at once with a body that sends one byte and never ends.
 * Tests read what arrived through the RECEIVER service binding: GET /deliveries?name=<name>.
 */
export interface Received {
  at: number;
  url: string;
  headers: Record<string, string>;
  body: string;
  answered: number;
}

const received = new Map<string, Received[]>();

export async function outbound(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.hostname !== "receiver.test") throw new Error(`no network in tests: ${request.url}`);
  if (url.pathname.includes("/stalled-body/")) {
    const body = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new TextEncoder().encode("{")) });
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  }
  const name = url.pathname.replace(/^\/hooks\//, "");
  const list = received.get(name) ?? [];
  received.set(name, list);
  const q = url.searchParams;
  const slow = Number(q.get("slowMs") ?? 0);
  if (slow > 0) await new Promise((r) => setTimeout(r, slow));
  const status = q.get("gone") ? 410 : list.length < Number(q.get("fail") ?? 0) ? Number(q.get("status") ?? 500) : 204;
  list.push({ at: Date.now(), url: request.url, headers: Object.fromEntries(request.headers), body: await request.text(), answered: status });
  const headers: Record<string, string> = {};
  if (q.get("retryAfter") && status !== 204) headers["retry-after"] = q.get("retryAfter")!;
  return new Response(status === 204 ? null : "receiver says no", { status, headers });
}

export async function inspect(request: Request): Promise<Response> {
  const name = new URL(request.url).searchParams.get("name") ?? "";
  return Response.json(received.get(name) ?? []);
}
