import { describe, expect, it } from "vitest";
import { customerStub, ingestOk } from "../helpers/api";
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

});
