// Threshold webhooks under faults, against a real gateway and a real receiver on 127.0.0.1 that
// verifies every signature with the `standardwebhooks` package: receiver down, answering 500, slow
// past the attempt timeout, 410 Gone; the gateway SIGKILLed while deliveries are pending and while an
// attempt is in flight; and concurrent ingest crossing one threshold. Every notification must arrive
// with one webhook-id on every attempt, exactly once per threshold per usage period, validly signed.
//
// The production schedule retries after 5 s, 5 min, 30 min…, and an attempt times out after 15 s.
// This gateway runs with WEBHOOK_RETRY_SCALE=0.001 (retries after 5 ms, 0.3 s, 1.8 s, 7.2 s, 18 s…)
// and WEBHOOK_TIMEOUT_MS=2000, so the same code paths run in seconds.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startGateway, type Gateway } from "./harness.mjs";
import { startReceiver, type Delivery, type Receiver } from "./webhook-receiver.mjs";

const TIMEOUT_MS = 2_000;
const METER = "hook_count";
const EVENT_TYPE = "hook";

let gw: Gateway;
let rx: Receiver;

beforeAll(async () => {
  rx = await startReceiver();
  gw = await startGateway({ env: { CONFIG_CACHE_SECONDS: "0", WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS), WEBHOOK_RETRY_SCALE: "0.001" } });
  await api("POST", "/api/v1/meters", { slug: METER, eventType: EVENT_TYPE, aggregation: "COUNT" }, 201);
});

afterAll(async () => {
  await gw?.cleanup();
  await rx?.close();
});

async function api(method: string, path: string, body?: unknown, expectStatus?: number): Promise<any> {
  const res = await gw.fetch(path, {
    method,
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (expectStatus !== undefined) expect(res.status, `${method} ${path}: ${text}`).toBe(expectStatus);
  return text ? JSON.parse(text) : null;
}

interface Scenario {
  name: string;
  subject: string;
  feature: string;
  channel: { id: string };
  rule: { id: string };
}

/** A feature of its own (so no other scenario's rule applies), an entitlement, a channel and a usage_value rule. */
async function scenario(name: string, thresholds: number[], url = rx.url(name)): Promise<Scenario> {
  const feature = `f_${name.replaceAll("-", "_")}`;
  const subject = `s-${name}`;
  await api("POST", "/api/v1/features", { key: feature, name: feature, meterSlug: METER }, 201);
  await api("POST", `/api/v1/subjects/${subject}/entitlements`, { type: "metered", featureKey: feature, usagePeriod: { interval: "MONTH" }, issueAfterReset: 1_000 }, 201);
  const channel = await api("POST", "/api/v1/notification/channels", { type: "WEBHOOK", name, url, signingSecret: rx.secret }, 201);
  const rule = await api(
    "POST",
    "/api/v1/notification/rules",
    { type: "entitlements.balance.threshold", name, channels: [channel.id], thresholds: thresholds.map((value) => ({ type: "usage_value", value })), features: [feature] },
    201,
  );
  return { name, subject, feature, channel, rule };
}

async function ingest(subject: string, n: number): Promise<void> {
  const events = Array.from({ length: n }, () => ({ specversion: "1.0", id: randomUUID(), source: "e2e", type: EVENT_TYPE, subject, data: {} }));
  const res = await gw.fetch("/api/v1/events", { method: "POST", headers: { "content-type": "application/cloudevents-batch+json" }, body: JSON.stringify(events) });
  expect(res.status, await res.text()).toBe(202);
}

/** The gateway's own record of a rule's notifications (mirrored to D1 after each delivery change). */
async function notificationEvents(s: Scenario): Promise<any[]> {
  return (await api("GET", `/api/v1/notification/events?rule=${s.rule.id}&pageSize=100`, undefined, 200)).items;
}

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * What the receiver got for a scenario: every request validly signed; one webhook-id per crossed
 * threshold (the payload's id is the webhook-id), each delivered (answered 2xx) at least once.
 */
function expectDelivered(s: Scenario, thresholds: number[]): Map<number, Delivery[]> {
  const got = rx.of(s.name);
  expect(got.filter((d) => !d.valid), "every request carries a valid signature").toEqual([]);
  const byId = new Map<string, Delivery[]>();
  for (const d of got) byId.set(d.id, [...(byId.get(d.id) ?? []), d]);
  const byThreshold = new Map<number, Delivery[]>();
  for (const [id, list] of byId) {
    const values = new Set(list.map((d) => d.payload.data.threshold.value));
    expect(values.size, `webhook-id ${id} always carries the same threshold`).toBe(1);
    for (const d of list) expect(d.payload.id).toBe(id);
    const value = [...values][0] as number;
    expect(byThreshold.has(value), `threshold ${value} notified under two webhook-ids`).toBe(false);
    byThreshold.set(value, list);
    expect(list.some((d) => d.status >= 200 && d.status < 300), `webhook-id ${id} delivered`).toBe(true);
  }
  expect([...byThreshold.keys()].sort((a, b) => a - b)).toEqual(thresholds);
  return byThreshold;
}

const delivered = (s: Scenario, n: number) => (d: Delivery) => d.name === s.name && d.status === 204 && new Set(rx.of(s.name).filter((x) => x.status === 204).map((x) => x.id)).size >= n;

describe("webhooks under faults", () => {
  it("retries a receiver that is down (connection refused) until it comes up, under one webhook-id", async () => {
    const port = await freePort();
    const s = await scenario("down", [2, 4], `http://127.0.0.1:${port}/hooks/down`);
    await ingest(s.subject, 2);
    await ingest(s.subject, 2);
    // Both notifications have failed at least twice (refused) before anything listens on the port.
    await until("two refused attempts per notification", () => notificationEvents(s), (items) =>
      items.length === 2 && items.every((n) => (n.deliveryStatus[0]?.attempts as unknown[]).length >= 2),
    );
    const late = await startReceiver({ port, secret: rx.secret });
    try {
      await until("both delivered", async () => late.of("down").filter((d) => d.status === 204).length, (n) => n >= 2);
      rx.deliveries.push(...late.deliveries);
    } finally {
      await late.close();
    }
    expectDelivered(s, [2, 4]);
    const items = await until("SUCCESS recorded", () => notificationEvents(s), (items) => items.every((n) => n.deliveryStatus[0].state === "SUCCESS"));
    for (const n of items) {
      const attempts = n.deliveryStatus[0].attempts as { state: string; response: { statusCode?: number; body: string } }[];
      expect(attempts.length).toBeGreaterThanOrEqual(3);
      // Refused: no HTTP status at all, until the last attempt.
      for (const a of attempts.slice(0, -1)) expect(a).toMatchObject({ state: "FAILED", response: { body: expect.stringMatching(/connect|refused|network/i) } });
      for (const a of attempts.slice(0, -1)) expect(a.response.statusCode).toBeUndefined();
      expect(attempts.at(-1)).toMatchObject({ state: "SUCCESS", response: { statusCode: 204 } });
    }
  });

  it("retries answers of 500 and attempts that time out, with the same webhook-id", async () => {
    const failing = await scenario("status-500", [2, 4]);
    rx.behave("status-500", ({ attempt }) => ({ status: attempt < 3 ? 500 : 204 }));
    const slow = await scenario("slow", [2]);
    rx.behave("slow", ({ attempt }) => (attempt < 2 ? { status: 204, delayMs: TIMEOUT_MS * 3 } : { status: 204 }));
    await Promise.all([ingest(failing.subject, 2), ingest(slow.subject, 2)]);
    await ingest(failing.subject, 2);
    expect(await rx.waitFor(delivered(failing, 2), 30_000), "both 500 notifications delivered").not.toBeNull();
    // A held request is recorded as 204 when it arrives; the third attempt is the one answered in time.
    expect(await rx.waitFor((d) => d.name === "slow" && d.attempt >= 2, 30_000), "slow receiver's third attempt").not.toBeNull();

    const byThreshold = expectDelivered(failing, [2, 4]);
    for (const list of byThreshold.values()) expect(list.map((d) => d.status)).toEqual([500, 500, 500, 204]);
    const [slowList] = [...expectDelivered(slow, [2]).values()];
    expect(slowList!.length).toBe(3);
    const [n] = await until("slow: SUCCESS recorded", () => notificationEvents(slow), (items) => items[0]?.deliveryStatus[0].state === "SUCCESS");
    const reasons = n.deliveryStatus[0].attempts.map((a: any) => a.state);
    expect(reasons).toEqual(["FAILED", "FAILED", "SUCCESS"]);
  });

  it("stops at 410 Gone: one attempt, the channel is disabled, later crossings are not sent to it", async () => {
    const s = await scenario("gone", [2, 4]);
    rx.behave("gone", () => ({ status: 410 }));
    await ingest(s.subject, 2);
    const [n] = await until("FAILED recorded", () => notificationEvents(s), (items) => items[0]?.deliveryStatus[0].state === "FAILED");
    expect(n.deliveryStatus[0].reason).toMatch(/410/);
    expect((await api("GET", `/api/v1/notification/channels/${s.channel.id}`, undefined, 200)).disabled).toBe(true);
    await ingest(s.subject, 2);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(rx.of("gone").map((d) => d.status)).toEqual([410]);
    expect(rx.of("gone")[0]!.valid).toBe(true);
  });

  it("delivers what was pending, and what was in flight, after the gateway is SIGKILLed and restarted", async () => {
    const pending = await scenario("kill-pending", [2, 4]);
    let healed = false;
    rx.behave("kill-pending", () => ({ status: healed ? 204 : 503 }));
    const inflight = await scenario("kill-inflight", [2]);
    rx.behave("kill-inflight", ({ attempt }) => (attempt === 0 ? { status: 204, delayMs: 60_000 } : { status: 204 }));
    await ingest(pending.subject, 2);
    await ingest(pending.subject, 2);
    await until("503s recorded", () => notificationEvents(pending), (items) => items.length === 2 && items.every((n) => n.deliveryStatus[0].attempts.length >= 2));
    await ingest(inflight.subject, 2);
    expect(await rx.waitFor((d) => d.name === "kill-inflight", 10_000), "first attempt in flight").not.toBeNull();

    await gw.kill9(); // while kill-inflight's first attempt is held open and kill-pending waits for a retry
    healed = true;
    gw = await gw.start();

    expect(await rx.waitFor(delivered(pending, 2), 60_000), "pending notifications delivered after the restart").not.toBeNull();
    expect(await rx.waitFor((d) => d.name === "kill-inflight" && d.attempt >= 1, 60_000), "in-flight notification sent again").not.toBeNull();
    const byThreshold = expectDelivered(pending, [2, 4]);
    for (const list of byThreshold.values()) expect(list.at(-1)!.status).toBe(204);
    expectDelivered(inflight, [2]);
    const items = await until("SUCCESS recorded", () => notificationEvents(inflight), (items) => items[0]?.deliveryStatus[0].state === "SUCCESS");
    expect(items).toHaveLength(1);
  });

  it("sends one notification when concurrent requests cross a threshold, and one more after a reset", async () => {
    const s = await scenario("concurrent", [100]);
    // 40 requests of 5 events at once: usage goes 0 → 200 through one DO, crossing 100 once.
    await Promise.all(Array.from({ length: 40 }, () => ingest(s.subject, 5)));
    expect(await rx.waitFor((d) => d.name === "concurrent", 10_000)).not.toBeNull();
    const ent = await api("GET", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/value`, undefined, 200);
    expect(ent.usage).toBe(200);
    await api("POST", `/api/v1/subjects/${s.subject}/entitlements/${s.feature}/reset`, {}, 204);
    await Promise.all(Array.from({ length: 40 }, () => ingest(s.subject, 5)));
    await until("second period's notification", async () => new Set(rx.of("concurrent").map((d) => d.id)).size, (n) => n >= 2, 10_000);
    await new Promise((r) => setTimeout(r, 1_000)); // anything extra would have arrived by now
    const got = rx.of("concurrent");
    expect(got.every((d) => d.valid && d.status === 204)).toBe(true);
    expect(got).toHaveLength(2);
    expect(got[0]!.id).not.toBe(got[1]!.id);
    expect(got.map((d) => d.payload.data.threshold)).toEqual([{ type: "usage_value", value: 100 }, { type: "usage_value", value: 100 }]);
    expect(await notificationEvents(s)).toHaveLength(2);
  });
});
