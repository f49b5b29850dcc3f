import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, customerStub, ingestOk } from "../helpers/api";
import { setup, usage } from "../helpers/entitlements";
import { eventually, notifyOn, outbox, received } from "../helpers/notifications";

const LIMIT = { issueAfterReset: 100 };

describe("deliveries changed while an attempt is in flight", () => {
  it("a resend requested during an attempt is sent after it, not overwritten by that attempt's outcome", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 1 }], "?slowMs=600");
    await ingestOk([usage(s, { tokens: 1 })]);
    const [row] = await eventually(() => outbox(s.subject), (r) => r[0]?.state === "SENDING", 3000);
    expect(row!.state).toBe("SENDING");
    // The first attempt is still waiting for the slow receiver: the resend is accepted…
    const queued = await customerStub(s.subject).resendNotification({ namespace: "default", subject: s.subject }, row!.id, []);
    expect(queued).toBe(1);
    // …and goes out once the attempt in flight has ended.
    const got = await eventually(() => received(name), (r) => r.length >= 2, 5000);
    expect(got.map((r) => r.headers["webhook-id"])).toEqual([row!.id, row!.id]);
    const done = await eventually(() => outbox(s.subject), (r) => r[0]?.state === "SUCCESS" && r[0]?.attempts === 1);
    expect(done[0]).toMatchObject({ state: "SUCCESS", attempts: 1 });
  }, 15_000);

  it("a 410 that fails a channel's other pending deliveries updates their notification events in D1 too", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { channel } = await notifyOn(s, [{ type: "usage_value", value: 10 }, { type: "usage_value", value: 20 }], "?fail=1&status=503");
    await ingestOk([usage(s, { tokens: 10 })]);
    // The first notification's first attempt fails; its retry waits ~5 s, and D1 lists it as pending.
    const [first] = await eventually(() => outbox(s.subject), (r) => r[0]?.attempts === 1);
    expect(first).toMatchObject({ state: "PENDING", attempts: 1 });
    const listed = await eventually(() => api("GET", `/api/v1/notification/events/${first!.id}`), (r) => r.body?.deliveryStatus?.[0]?.state === "PENDING");
    expect(listed.body.deliveryStatus[0].state).toBe("PENDING");

    // The receiver is gone by the time the second notification is sent: 410 disables the channel.
    const put = await api("PUT", `/api/v1/notification/channels/${channel.id}`, {
      body: { type: "WEBHOOK", name: channel.name, url: channel.url.replace(/\?.*$/, "?gone=1"), signingSecret: channel.signingSecret },
    });
    expect(put.status, put.text).toBe(200);
    await ingestOk([usage(s, { tokens: 10 })]);
    const rows = await eventually(() => outbox(s.subject), (r) => r.length === 2 && r.every((d) => d.state === "FAILED"));
    expect(rows.map((r) => r.state)).toEqual(["FAILED", "FAILED"]);

    // D1's copy of the first notification must say so as well, not "pending" with a retry that never comes.
    const after = await eventually(() => api("GET", `/api/v1/notification/events/${first!.id}`), (r) => r.body?.deliveryStatus?.[0]?.state === "FAILED", 3000);
    expect(after.body.deliveryStatus[0]).toMatchObject({ state: "FAILED" });
    expect(after.body.deliveryStatus[0].nextAttempt).toBeUndefined();
  }, 15_000);
  it("more notification events than one mirror run copies (a 410 failing many pending deliveries) all reach D1", async () => {
    const s = await setup({ entitlement: LIMIT });
    const { channel } = await notifyOn(s, [{ type: "usage_value", value: 10 }], "?gone=1");
    await ingestOk([usage(s, { tokens: 1 })]);
    // 60 earlier notifications whose deliveries to the channel wait for a retry far ahead.
    const later = Date.now() + 3_600_000;
    await runInDurableObject(customerStub(s.subject), (_, st) => {
      for (let i = 0; i < 60; i++) {
        const id = `01JZZZZZZZZZZZZZZZZZZZ${String(i).padStart(4, "0")}`;
        st.storage.sql.exec("INSERT INTO notifications (id, rule_id, type, created_at, payload, version, mirrored_version) VALUES (?, 'r', 'entitlements.balance.threshold', ?, ?, 1, 1)", id, Date.now(), JSON.stringify({ id }));
        st.storage.sql.exec(
          "INSERT INTO deliveries (notification_id, channel_id, state, reason, attempts, next_attempt_at, log, updated_at) VALUES (?, ?, 'PENDING', 'retrying', 1, ?, '[]', ?)",
          id,
          channel.id,
          later,
          Date.now(),
        );
      }
    });
    await ingestOk([usage(s, { tokens: 10 })]);
    const rows = await eventually(() => outbox(s.subject), (r) => r.length === 61 && r.every((d) => d.state === "FAILED"));
    expect(rows.filter((r) => r.state === "FAILED")).toHaveLength(61);
    const listed = await eventually(
      () => api("GET", `/api/v1/notification/events?subject=${s.subject}&pageSize=100`),
      (r) => r.body?.totalCount === 61 && r.body.items.every((e: any) => e.deliveryStatus[0]?.state === "FAILED"),
      5000,
    );
    expect(listed.body.totalCount).toBe(61);
    expect(listed.body.items.filter((e: any) => e.deliveryStatus[0]?.state !== "FAILED")).toEqual([]);
  }, 15_000);

});
