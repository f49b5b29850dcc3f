import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { send } from "../../src/customer/outbox";
import { api, customerStub, ingestOk } from "../helpers/api";
import { setup, usage } from "../helpers/entitlements";
import { eventually, notifyOn, outbox, received, retryNow, SECRET } from "../helpers/notifications";

const LIMIT = { issueAfterReset: 100 };

describe("threshold notifications", () => {
  it("writes the outbox row in the transaction that crossed, then delivers it signed from the alarm", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 50 }]);
    await ingestOk([usage(s, { tokens: 40 })]);
    expect(await outbox(s.subject)).toHaveLength(0);
    await ingestOk([usage(s, { tokens: 15 })]);
    const rows = await outbox(s.subject);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.type).toBe("entitlements.balance.threshold");

    const got = await eventually(() => received(name), (r) => r.length === 1);
    expect(got).toHaveLength(1);
    const payload = new Webhook(SECRET).verify(got[0]!.body, got[0]!.headers) as any;
    expect(payload).toMatchObject({
      id: rows[0]!.id,
      type: "entitlements.balance.threshold",
      data: { threshold: { type: "usage_value", value: 50 }, value: { usage: 55, balance: 45, hasAccess: true }, subject: { key: s.subject }, feature: { key: s.feature } },
    });
    expect(payload.data.entitlement).toMatchObject({ id: s.entitlement.id, featureKey: s.feature, subjectKey: s.subject, type: "metered" });
    expect(got[0]!.headers["webhook-id"]).toBe(rows[0]!.id);
    expect(got[0]!.headers["svix-id"]).toBe(rows[0]!.id);
    expect((await outbox(s.subject))[0]!.state).toBe("SUCCESS");
  });

  it("sends one notification for the most advanced threshold a batch crosses, and never the same one twice", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [
      { type: "usage_percentage", value: 50 },
      { type: "usage_percentage", value: 80 },
      { type: "usage_percentage", value: 100 },
    ]);
    await ingestOk([usage(s, { tokens: 85 })]);
    await ingestOk([usage(s, { tokens: 5 })]);
    const got = await eventually(() => received(name), (r) => r.length >= 1);
    expect(got).toHaveLength(1);
    expect(JSON.parse(got[0]!.body).data.threshold).toEqual({ type: "usage_percentage", value: 80 });
    await ingestOk([usage(s, { tokens: 10 })]);
    const all = await eventually(() => received(name), (r) => r.length >= 2);
    expect(all.map((r) => JSON.parse(r.body).data.threshold.value)).toEqual([80, 100]);
  });

  it("under concurrent ingest, exactly one notification per threshold", async () => {
    const s = await setup({ entitlement: LIMIT });
    await notifyOn(s, [{ type: "usage_value", value: 30 }, { type: "balance_value", value: 0 }]);
    await Promise.all(Array.from({ length: 20 }, () => ingestOk([usage(s, { tokens: 3 }), usage(s, { tokens: 2 })])));
    const rows = await outbox(s.subject);
    const thresholds = await runInDurableObject(customerStub(s.subject), (_, st) =>
      st.storage.sql.exec<{ threshold_key: string }>("SELECT threshold_key FROM fired ORDER BY threshold_key").toArray().map((r) => r.threshold_key),
    );
    expect(thresholds).toEqual(["balance_value:0", "usage_value:30"]);
    expect(rows).toHaveLength(2);
  });

  it("a crossing while an earlier delivery is still in flight is delivered without waiting for more usage", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 10 }, { type: "usage_value", value: 20 }], "?slowMs=400");
    await ingestOk([usage(s, { tokens: 10 })]);
    // The alarm is now sending the first notification to a receiver that takes 400 ms to answer.
    await new Promise((r) => setTimeout(r, 150));
    await ingestOk([usage(s, { tokens: 10 })]);
    const crossedAt = Date.now();
    const got = await eventually(() => received(name), (r) => r.length === 2, 3000);
    expect(got.map((r) => JSON.parse(r.body).data.threshold.value)).toEqual([10, 20]);
    // The second is sent as soon as the first attempt's run ends, not at some later alarm.
    expect(got[1]!.at - crossedAt).toBeLessThan(1500);
    await eventually(() => outbox(s.subject), (r) => r.every((d) => d.state === "SUCCESS"));
    // The alarm still serves the jobs left (prune, flush): none is stranded without an alarm.
    const { jobs, alarm } = await runInDurableObject(customerStub(s.subject), async (_, st) => ({
      jobs: st.storage.sql.exec<{ key: string; value: number }>("SELECT key, value FROM meta WHERE key LIKE 'job:%' ORDER BY key").toArray(),
      alarm: await st.storage.getAlarm(),
    }));
    expect(jobs.map((j) => j.key)).not.toContain("job:deliver");
    expect(alarm).toBe(Math.min(...jobs.map((j) => j.value)));
  });

  it("retries a failing receiver on the schedule with the same webhook-id; eviction keeps the schedule", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 1 }], "?fail=2&status=503");
    await ingestOk([usage(s, { tokens: 1 })]);
    const first = await eventually(() => outbox(s.subject), (r) => r[0]?.attempts === 1);
    expect(first[0]).toMatchObject({ state: "PENDING", attempts: 1 });
    // Second attempt is scheduled ~5 s after the first.
    const lastAt = (await received(name))[0]!.at;
    expect(first[0]!.next_attempt_at! - lastAt).toBeGreaterThanOrEqual(4_000);
    expect(first[0]!.next_attempt_at! - lastAt).toBeLessThanOrEqual(6_000);

    // Park the retry further out (as the later steps of the schedule do), then evict the object.
    const parked = Date.now() + 10 * 60_000;
    await runInDurableObject(customerStub(s.subject), async (_, st) => {
      st.storage.sql.exec("UPDATE deliveries SET next_attempt_at = ?", parked);
      st.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'job:deliver'", parked);
      await st.storage.setAlarm(parked);
    });
    await evictDurableObject(customerStub(s.subject));
    const after = await outbox(s.subject);
    expect(after[0]).toMatchObject({ state: "PENDING", attempts: 1, next_attempt_at: parked });
    const alarm = await runInDurableObject(customerStub(s.subject), (_, st) => st.storage.getAlarm());
    expect(alarm).toBe(parked);

    await retryNow(s.subject);
    await runDurableObjectAlarm(customerStub(s.subject));
    await eventually(() => outbox(s.subject), (r) => r[0]?.attempts === 2);
    await retryNow(s.subject);
    await runDurableObjectAlarm(customerStub(s.subject));
    const done = await eventually(() => outbox(s.subject), (r) => r[0]?.state === "SUCCESS");
    expect(done[0]).toMatchObject({ state: "SUCCESS", attempts: 3 });
    const got = await received(name);
    expect(got.map((r) => r.answered)).toEqual([503, 503, 204]);
    expect(new Set(got.map((r) => r.headers["webhook-id"])).size).toBe(1);
    for (const r of got) expect(() => new Webhook(SECRET).verify(r.body, r.headers)).not.toThrow();
  });

  it("a 410 Gone disables the channel and fails its deliveries", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { channel } = await notifyOn(s, [{ type: "usage_value", value: 1 }], "?gone=1");
    await ingestOk([usage(s, { tokens: 1 })]);
    const rows = await eventually(() => outbox(s.subject), (r) => r[0]?.state === "FAILED");
    expect(rows[0]).toMatchObject({ state: "FAILED", attempts: 1 });
    const ch = await eventually(() => api("GET", `/api/v1/notification/channels/${channel.id}`), (r) => r.body?.disabled === true);
    expect(ch.body.disabled).toBe(true);
  });

  it("a reset starts a new period: thresholds fire again, and entitlements.reset rules are told", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name, channel } = await notifyOn(s, [{ type: "usage_value", value: 10 }]);
    const resetRule = await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.reset", name: "resets", channels: [channel.id], features: [s.feature] } });
    expect(resetRule.status, resetRule.text).toBe(201);
    await ingestOk([usage(s, { tokens: 10 })]);
    const reset = await api("POST", `/api/v1/subjects/${s.subject}/entitlements/${s.entitlement.id}/reset`, { body: {} });
    expect(reset.status, reset.text).toBe(204);
    await ingestOk([usage(s, { tokens: 10 })]);
    const got = await eventually(() => received(name), (r) => r.length >= 3);
    expect(got.map((r) => JSON.parse(r.body).type).sort()).toEqual(["entitlements.balance.threshold", "entitlements.balance.threshold", "entitlements.reset"]);
  });
});

describe("one delivery attempt", () => {
  it("a custom header value fetch refuses (stored before values were checked) fails the attempt, not the delivery job", async () => {
    const calls: string[] = [];
    const fetcher = (async (url: string) => (calls.push(url), new Response("ok"))) as unknown as typeof fetch;
    const channel = { id: "c", name: "c", url: "https://example.com/hook", signingSecret: SECRET, disabled: false };
    const bad = await send({ ...channel, customHeaders: { "x-team": "a\r\nX-Injected: 1" } }, "msg_1", "{}", fetcher);
    expect(bad).toMatchObject({ status: "network", body: expect.stringMatching(/header/i) });
    expect(calls).toEqual([]);
    const good = await send({ ...channel, customHeaders: { "x-team": "billing" } }, "msg_2", "{}", fetcher);
    expect(good).toMatchObject({ status: 200, body: "ok" });
    expect(calls).toEqual(["https://example.com/hook"]);
  });

  it("keeps the start of a reply and stops reading: a body that never ends does not hold the attempt until its timeout", async () => {
    // 8 KB, then nothing more, ever (reading it whole would also never end in memory: a local stream ignores the abort).
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull: (c) => (sent++ < 8 ? c.enqueue(new TextEncoder().encode("é".repeat(512))) : new Promise<void>(() => {})),
    });
    const fetcher = (async () => new Response(endless, { status: 200 })) as unknown as typeof fetch;
    const channel = { id: "c", name: "c", url: "https://example.com/hook", signingSecret: SECRET, disabled: false, customHeaders: {} };
    const attempt = await send(channel, "msg_3", "{}", fetcher, 3000);
    expect(attempt).toMatchObject({ status: 200, body: "é".repeat(1024) });
    expect(attempt.durationMs).toBeLessThan(3000);
  });
});

describe("notification events API", () => {
  it("lists events with delivery status, gets one, and resends with the same webhook-id", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name, rule } = await notifyOn(s, [{ type: "usage_value", value: 5 }]);
    await ingestOk([usage(s, { tokens: 6 })]);
    const list = await eventually(
      () => api("GET", `/api/v1/notification/events?rule=${rule.id}`),
      (r) => r.body?.items?.[0]?.deliveryStatus?.[0]?.state === "SUCCESS",
    );
    expect(list.body.totalCount).toBe(1);
    const ev = list.body.items[0];
    expect(ev).toMatchObject({ type: "entitlements.balance.threshold", rule: { id: rule.id }, payload: { id: ev.id } });
    expect(ev.deliveryStatus[0].attempts[0].response.statusCode).toBe(204);
    expect((await api("GET", `/api/v1/notification/events/${ev.id}`)).body.id).toBe(ev.id);
    expect((await api("GET", `/api/v1/notification/events?subject=${s.subject}`)).body.totalCount).toBe(1);

    expect((await api("POST", `/api/v1/notification/events/${ev.id}/resend`, { body: {} })).status).toBe(202);
    const got = await eventually(() => received(name), (r) => r.length === 2);
    expect(got.map((r) => r.headers["webhook-id"])).toEqual([ev.id, ev.id]);
    expect((await api("POST", `/api/v1/notification/events/01ARZ3NDEKTSV4RRFFQ69G5FAV/resend`, { body: {} })).status).toBe(404);
  });
});
