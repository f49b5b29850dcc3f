// The acceptance scenario against both runtimes: `npm start` (wrangler dev) and `npm run serve`
// (the production bundle on workerd, scripts/serve.mjs). Same steps, same expectations: what a
// self-hosting user gets must be what the tests of the development server promise.
// Also: a state directory written by one runtime is read by the other (same on-disk layout).
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type Gateway, type Runtime } from "./harness.mjs";

const SUBJECT = "customer-1";
const RUNTIMES: Array<[Runtime, string]> = [
  ["dev", "npm start"],
  ["serve", "npm run serve"],
];

interface Delivery {
  headers: Record<string, string>;
  body: string;
}

/** A plain Node HTTP server on 127.0.0.1 standing in for a customer's webhook endpoint. */
async function startReceiver(): Promise<{ url: string; deliveries: Delivery[]; close: () => Promise<void> }> {
  const deliveries: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      deliveries.push({ headers: req.headers as Record<string, string>, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/e2e`, deliveries, close: () => new Promise((r) => server.close(() => r())) };
}

function client(gw: () => Gateway) {
  const call = async (method: string, path: string, body?: unknown, contentType = "application/json") => {
    const res = await gw().fetch(path, {
      method,
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": contentType } } : {}),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : null };
  };
  const expectStatus = async (p: Promise<{ status: number; text: string; body: any }>, status: number) => {
    const r = await p;
    expect(r.status, r.text).toBe(status);
    return r.body;
  };
  const event = (id: string, tokens: number) => ({
    specversion: "1.0",
    id,
    source: "e2e",
    type: "prompt",
    subject: SUBJECT,
    time: new Date().toISOString(),
    data: { tokens, model: "m" },
  });
  const ingest = (events: unknown[]) => expectStatus(call("POST", "/api/v1/events", events, "application/cloudevents-batch+json"), 202);
  const total = async () => {
    const body = await expectStatus(call("GET", `/api/v1/meters/tokens_total/query?subject=${SUBJECT}`), 200);
    expect(body.data).toHaveLength(1);
    return body.data[0].value as number;
  };
  return { call, expectStatus, event, ingest, total };
}

for (const [runtime, command] of RUNTIMES) {
  describe(`acceptance against ${command}`, () => {
    let gw: Gateway;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    const { call, expectStatus, event, ingest, total } = client(() => gw);

    beforeAll(async () => {
      receiver = await startReceiver();
      gw = await startGateway({ runtime });
    });

    afterAll(async () => {
      await gw?.cleanup();
      await receiver?.close();
    });

    it("meters, checks and notifies (alarms included); totals survive a graceful restart and a SIGKILL", async () => {
      await expectStatus(
        call("POST", "/api/v1/meters", { slug: "tokens_total", eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } }),
        201,
      );
      await expectStatus(call("POST", "/api/v1/features", { key: "tokens", name: "tokens", meterSlug: "tokens_total" }), 201);
      const anchor = new Date(Date.now() - 86_400_000).toISOString(); // no period boundary near the test
      await expectStatus(
        call("POST", `/api/v1/subjects/${SUBJECT}/entitlements`, { type: "metered", featureKey: "tokens", usagePeriod: { interval: "MONTH", anchor }, issueAfterReset: 100 }),
        201,
      );

      // Ingest with a resent id inside the batch: counted once.
      const first = randomUUID();
      expect(await ingest([event(first, 5), event(randomUUID(), 7), event(first, 5)])).toMatchObject({ accepted: 2, duplicates: 1, rejected: [] });
      expect(await total()).toBe(12);

      // A quota check that records its event atomically.
      const checked = await expectStatus(call("POST", "/api/v1/check", { subject: SUBJECT, feature: "tokens", event: event(randomUUID(), 10) }), 200);
      expect(checked).toMatchObject({ allowed: true, usage: 22, balance: 78 });
      expect(await total()).toBe(22);

      // Webhooks from the runtime to a local receiver, signed: the rule's test delivery (sent by the
      // request), then a threshold crossing (written to the outbox by the ingest, sent by the alarm).
      const channel = await expectStatus(call("POST", "/api/v1/notification/channels", { type: "WEBHOOK", name: "e2e", url: receiver.url }), 201);
      const rule = await expectStatus(
        call("POST", "/api/v1/notification/rules", {
          type: "entitlements.balance.threshold",
          name: "usage",
          channels: [channel.id],
          thresholds: [
            { type: "usage_percentage", value: 50 },
            { type: "usage_percentage", value: 80 },
          ],
        }),
        201,
      );
      const verify = (d: Delivery) => new Webhook(channel.signingSecret).verify(d.body, d.headers) as any;
      const sent = await expectStatus(call("POST", `/api/v1/notification/rules/${rule.id}/test`), 201);
      expect(sent.deliveryStatus[0]).toMatchObject({ state: "SUCCESS" });
      expect(receiver.deliveries).toHaveLength(1);
      expect(verify(receiver.deliveries[0]!)).toMatchObject({ id: sent.id, type: "entitlements.balance.threshold" });

      await ingest([event(randomUUID(), 30)]);
      const crossed = await thresholdDelivery(receiver.deliveries, verify, 50);
      expect(crossed.data).toMatchObject({ value: { usage: 52, balance: 48 }, subject: { key: SUBJECT }, feature: { key: "tokens" } });

      // Graceful stop (SIGTERM to the process group), then a new process on the same state.
      gw = await gw.restart();
      expect(await total()).toBe(52);
      const value = await expectStatus(call("GET", `/api/v1/subjects/${SUBJECT}/entitlements/tokens/value`), 200);
      expect(value).toMatchObject({ usage: 52, balance: 48 });

      // The next crossing, notified by the alarm of the restarted process.
      await ingest([event(randomUUID(), 30)]);
      expect((await thresholdDelivery(receiver.deliveries, verify, 80)).data).toMatchObject({ value: { usage: 82, balance: 18 } });

      // A crash right after a 2xx: what was acknowledged is there, and a resend is a duplicate.
      // (That Durable Object alarms survive a SIGKILL is shown in serve-runtime.e2e.test.ts, where
      // the timing is under control; here a notification in flight at the crash is retried only
      // after the outbox's 30 s stale-attempt timeout.)
      const late = event(randomUUID(), 3);
      expect(await ingest([late])).toMatchObject({ accepted: 1 });
      await gw.kill9();
      gw = await gw.start();
      expect(await total()).toBe(85);
      expect(await ingest([late])).toMatchObject({ accepted: 0, duplicates: 1 });
      expect(await total()).toBe(85);
      // One delivery per notification: the test, 50 % and 80 % (webhook-id is the notification id).
      expect(new Set(receiver.deliveries.map((d) => d.headers["webhook-id"])).size).toBe(3);
    });

    // serve dispatches crons through miniflare's trigger path on its own loopback socket; the public
    // socket must hand that path to the Worker like any other (a 404 problem), never run a handler.
    it.runIf(runtime === "serve")("does not expose miniflare's trigger paths on the public socket", async () => {
      for (const path of ["/cdn-cgi/local/scheduled?cron=*%2F5+*+*+*+*&format=json", "/cdn-cgi/local/email"]) {
        const res = await fetch(`${gw.baseUrl}${path}`, { method: "POST" });
        expect(res.status, path).toBe(404);
        expect(res.headers.get("content-type")).toContain("application/problem+json");
      }
    });
  });
}

/** Waits (up to 20 s) for the signed threshold notification of `percent`, and returns its payload. */
async function thresholdDelivery(deliveries: Delivery[], verify: (d: Delivery) => any, percent: number) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    // The rule test sent earlier has the same type and shape (OpenMeter's), for a made-up subject.
    const found = deliveries.map(verify).find((p) => p.data?.threshold?.value === percent && p.data?.subject?.key === SUBJECT);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no notification for the ${percent}% threshold; got ${deliveries.map((d) => d.body).join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("one state directory, both runtimes", () => {
  let dev: Gateway | undefined;
  let gw: Gateway | undefined;
  const { call, expectStatus, event, ingest, total } = client(() => gw!);

  afterAll(async () => {
    await gw?.cleanup();
    await dev?.cleanup(); // it created the state dir: this removes it
  });

  it("reads with npm run serve what npm start wrote, migrations included", async () => {
    gw = dev = await startGateway({ runtime: "dev" });
    await expectStatus(call("POST", "/api/v1/meters", { slug: "tokens_total", eventType: "prompt", aggregation: "SUM", valueProperty: "$.tokens" }), 201);
    await ingest([event(randomUUID(), 4), event(randomUUID(), 6)]);
    await dev.stop();

    gw = await startGateway({ runtime: "serve", stateDir: dev.stateDir, adminKey: dev.adminKey });
    expect(await total()).toBe(10);
    expect(gw.output()).toMatch(/migrations applied none \(up to date\)/);
    await ingest([event(randomUUID(), 1)]);
    expect(await total()).toBe(11);
  });
});
