// The benchmark's webhook receiver: a plain Node HTTP server on 127.0.0.1 that notes when each
// delivery arrived (as the request's headers come in, before the body is read) and checks its
// Standard Webhooks signature, so the threshold → webhook latency is measured to the receiver's door.
import { randomBytes } from "node:crypto";
import http from "node:http";
import { Webhook } from "standardwebhooks";
import { nowMs } from "./lib.mjs";

export async function startReceiver() {
  const secret = `whsec_${randomBytes(32).toString("base64")}`;
  const verifier = new Webhook(secret);
  const deliveries = [];
  const waiters = new Set();
  let invalid = 0;

  const server = http.createServer((req, res) => {
    const at = nowMs();
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      res.writeHead(204).end();
      const body = Buffer.concat(chunks).toString();
      let payload;
      try {
        payload = verifier.verify(body, req.headers);
      } catch {
        invalid++;
        return;
      }
      const d = { at, id: req.headers["webhook-id"], payload };
      deliveries.push(d);
      for (const w of waiters) if (w.match(d)) w.resolve(d);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}/hooks`,
    secret,
    deliveries,
    invalid: () => invalid,
    /** The first delivery (already received or still to come) for which `match` holds; null after `ms`. */
    waitFor(match, ms) {
      const seen = deliveries.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => {
        const w = {
          match,
          resolve: (d) => {
            clearTimeout(timer);
            waiters.delete(w);
            resolve(d);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          resolve(null);
        }, ms);
        waiters.add(w);
      });
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
