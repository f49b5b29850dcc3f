// A webhook receiver for end-to-end tests and benchmarks: a plain Node HTTP server on 127.0.0.1 that
// verifies every delivery's Standard Webhooks signature with the `standardwebhooks` package and
// answers as each test scenario says (fail N times, 500, 410, hang past the timeout…).
// Plain ESM so bench/ scripts can import it too; types in ./webhook-receiver.d.mts.
//
//   const rx = await startReceiver();                 // or { port } to come up where a channel already points
//   rx.behave("down-then-up", ({ attempt }) => attempt < 3 ? { status: 500 } : { status: 204 });
//   channel url: rx.url("down-then-up"), signingSecret: rx.secret
//   await rx.waitFor((d) => d.name === "down-then-up" && d.status === 204);
import { randomBytes } from "node:crypto";
import http from "node:http";
import { Webhook } from "standardwebhooks";

export async function startReceiver(options = {}) {
  const secret = options.secret ?? `whsec_${randomBytes(32).toString("base64")}`;
  const verifier = new Webhook(secret);
  /** @type {import("./webhook-receiver.d.mts").Delivery[]} */
  const deliveries = [];
  const behaviours = new Map();
  const waiters = new Set();
  const held = new Set();

  const server = http.createServer((req, res) => {
    // Arrival time: when the request's headers are in, before the body is read.
    const at = performance.timeOrigin + performance.now();
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const name = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.replace(/^\/hooks\//, ""));
      const id = String(req.headers["webhook-id"] ?? "");
      let payload = null;
      let valid = false;
      try {
        payload = verifier.verify(body, /** @type {Record<string, string>} */ (req.headers));
        valid = true;
      } catch {
        try {
          payload = JSON.parse(body);
        } catch {}
      }
      const attempt = deliveries.filter((d) => d.name === name && d.id === id).length;
      const behave = behaviours.get(name) ?? (() => ({ status: 204 }));
      const { status = 204, delayMs = 0, headers = {} } = behave({ id, attempt, payload }) ?? {};
      const d = { name, at, id, timestamp: String(req.headers["webhook-timestamp"] ?? ""), valid, payload, body, attempt, status };
      deliveries.push(d);
      for (const w of [...waiters]) if (w.pred(d)) w.resolve(d);
      if (delayMs > 0) {
        // Hold the answer (a slow receiver); the gateway's timeout will give up first.
        const timer = setTimeout(() => answer(), delayMs);
        held.add(timer);
        res.on("close", () => {
          clearTimeout(timer);
          held.delete(timer);
        });
        return;
      }
      answer();
      function answer() {
        if (res.destroyed || res.writableEnded) return;
        res.writeHead(status, headers).end(status === 204 ? undefined : `receiver says ${status}`);
      }
    });
  });
  server.keepAliveTimeout = 1_000;
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve(undefined));
  });
  const port = /** @type {import("node:net").AddressInfo} */ (server.address()).port;

  return {
    port,
    secret,
    deliveries,
    url: (name) => `http://127.0.0.1:${port}/hooks/${encodeURIComponent(name)}`,
    behave: (name, fn) => void behaviours.set(name, fn),
    of: (name) => deliveries.filter((d) => d.name === name),
    waitFor(pred, timeoutMs = 30_000) {
      const found = deliveries.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => {
        const w = {
          pred,
          resolve: (d) => {
            clearTimeout(w.timer);
            waiters.delete(w);
            resolve(d);
          },
          timer: setTimeout(() => {
            waiters.delete(w);
            resolve(null);
          }, timeoutMs),
        };
        waiters.add(w);
      });
    },
    close() {
      for (const t of held) clearTimeout(t);
      for (const w of waiters) clearTimeout(w.timer);
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}
