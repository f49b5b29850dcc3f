// Existing OpenMeter clients work against edgemeter unchanged: the official JavaScript client
// (@openmeter/sdk, pinned to the version the README cites) and the CloudEvents SDK drive a real
// `npm run serve` gateway. Every call below goes through a client; the SDK decodes every ISO date
// string in a response into a Date and throws HTTPError on any 4xx/5xx, so a shape it cannot take
// fails here.
import { isHTTPError, OpenMeter } from "@openmeter/sdk";
import { OpenMeter as PortalClient } from "@openmeter/sdk/portal";
import { CloudEvent, emitterFor, httpTransport } from "cloudevents";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGateway, type Gateway } from "./harness.mjs";
import { startReceiver, type Receiver } from "./webhook-receiver.mjs";

const SUBJECT = "acme";
const HOUR = 3_600_000;

/** The HTTP status a client call failed with (or throws what it got instead). */
async function failure(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    if (isHTTPError(err)) return err.status;
    throw err;
  }
  throw new Error("expected the call to fail");
}

describe("the official OpenMeter clients against npm run serve", () => {
  let gw: Gateway;
  let rx: Receiver;
  let om: OpenMeter;
  // Usage windows: from the start of the previous hour, so a run near xx:00 still sees every event.
  const from = new Date(Math.floor(Date.now() / HOUR) * HOUR - HOUR);
  // Usage before the reset's minute (resets are truncated to the minute; usage in it counts after).
  const earlier = new Date(Date.now() - 2 * 60_000);
  const prompt = (tokens: number, model: string, tier: string, id = randomUUID()) => ({
    id,
    type: "prompt",
    subject: SUBJECT,
    source: "sdk-e2e",
    time: earlier,
    data: { tokens, model, tier },
  });
  /** Sum of a query's rows by one group-by key. */
  const byKey = (rows: Array<{ value: number; groupBy: Record<string, string | null> }>, key: string) => {
    const totals: Record<string, number> = {};
    for (const r of rows) totals[r.groupBy[key] ?? "(none)"] = (totals[r.groupBy[key] ?? "(none)"] ?? 0) + r.value;
    return totals;
  };
  const sum = (rows: Array<{ value: number }>) => rows.reduce((a, r) => a + r.value, 0);

  beforeAll(async () => {
    rx = await startReceiver();
    gw = await startGateway({ runtime: "serve" });
    om = new OpenMeter({ baseUrl: gw.baseUrl, apiKey: gw.adminKey });
  });

  afterAll(async () => {
    await gw?.cleanup();
    await rx?.close();
  });

  it("meters: create, get, list, update, delete", async () => {
    const meter = await om.meters.create({
      slug: "tokens",
      name: "Tokens",
      eventType: "prompt",
      aggregation: "SUM",
      valueProperty: "$.tokens",
      groupBy: { model: "$.model" },
    });
    expect(meter).toMatchObject({ slug: "tokens", aggregation: "SUM", groupBy: { model: "$.model" } });
    expect(meter.createdAt).toBeInstanceOf(Date);
    expect(await om.meters.get(meter.id)).toMatchObject({ id: meter.id, slug: "tokens" });

    const updated = await om.meters.update("tokens", { name: "LLM tokens", description: "per model and tier", groupBy: { model: "$.model", tier: "$.tier" } });
    expect(updated).toMatchObject({ id: meter.id, name: "LLM tokens", description: "per model and tier", groupBy: { tier: "$.tier" } });

    const doomed = await om.meters.create({ slug: "doomed", eventType: "other", aggregation: "COUNT" });
    expect((await om.meters.list()).map((m) => m.slug).sort()).toEqual(["doomed", "tokens"]);
    await om.meters.delete("doomed");
    expect((await om.meters.list()).map((m) => m.id)).toEqual([meter.id]);
    expect(doomed.id).not.toBe(meter.id);
  });

  it("ingests CloudEvents (one, a batch with a resend, binary mode) and lists them", async () => {
    // One event, then a batch whose third event resends the first of the batch: counted once.
    await om.events.ingest(prompt(100, "gpt-4", "pro", "evt-single"));
    const resent = prompt(30, "gpt-4", "free");
    await om.events.ingest([resent, prompt(50, "o3", "pro"), resent]);
    // A CloudEvent from the CloudEvents SDK, through the OpenMeter SDK and through its own emitter
    // (binary HTTP mode: ce-* headers, data as the body).
    await om.events.ingest(new CloudEvent({ type: "prompt", source: "ce", subject: SUBJECT, time: earlier.toISOString(), data: { tokens: 7, model: "o3", tier: "free" } }) as any);
    const emit = emitterFor(httpTransport(`${gw.baseUrl}/api/v1/events`));
    const binary = new CloudEvent({ id: "evt-binary", type: "prompt", source: "ce", subject: SUBJECT, time: earlier.toISOString(), data: { tokens: 3, model: "gpt-4", tier: "pro" } });
    const answer = (await emit(binary, { headers: { authorization: `Bearer ${gw.adminKey}` } })) as { body: string };
    expect(JSON.parse(answer.body)).toMatchObject({ accepted: 1, duplicates: 0, rejected: [] });

    const events = await om.events.list({ subject: SUBJECT, from });
    expect(events).toHaveLength(5);
    expect(events.reduce((a, e) => a + (e.event.data as { tokens: number }).tokens, 0)).toBe(190);
    expect(events[0]!.ingestedAt).toBeInstanceOf(Date);
    // Without subject (and with a part of it), as OpenMeter's list: every matching subject's events.
    expect((await om.events.list({ from })).filter((e) => e.event.subject === SUBJECT)).toEqual(events);
    expect(await om.events.list({ subject: SUBJECT.slice(0, -1), from })).toEqual(expect.arrayContaining(events));
    const single = await om.events.list({ subject: SUBJECT, id: "evt-single" });
    expect(single.map((e) => e.event)).toMatchObject([{ id: "evt-single", type: "prompt", source: "sdk-e2e", subject: SUBJECT }]);
  });

  it("queries a meter: windowSize, groupBy, filterGroupBy, advancedMeterGroupByFilters", async () => {
    const all = await om.meters.query("tokens", { subject: [SUBJECT], from, windowSize: "HOUR", groupBy: ["model"] });
    expect(all.windowSize).toBe("HOUR");
    expect(all.data.every((r) => r.subject === SUBJECT && r.windowStart instanceof Date)).toBe(true);
    expect(byKey(all.data, "model")).toEqual({ "gpt-4": 133, o3: 57 });

    const gpt4 = await om.meters.query("tokens", { subject: [SUBJECT], from, groupBy: ["tier"], filterGroupBy: { model: "gpt-4" } });
    expect(byKey(gpt4.data, "tier")).toEqual({ pro: 103, free: 30 });

    const pro = await om.meters.query("tokens", { subject: [SUBJECT], from, advancedMeterGroupByFilters: JSON.stringify({ tier: { $eq: "pro" }, model: { $in: ["o3", "gpt-4"] } }) });
    expect(sum(pro.data)).toBe(153);

    const posted = await om.meters.queryPost("tokens", { subject: [SUBJECT], from, groupBy: ["tier"], advancedMeterGroupByFilters: { model: { $like: "gpt%" } } });
    expect(byKey(posted.data, "tier")).toEqual({ pro: 103, free: 30 });
  });

  it("subjects: upsert, list, get, delete", async () => {
    const upserted = await om.subjects.upsert([
      { key: SUBJECT, displayName: "Acme Inc.", metadata: { plan: "pro" }, stripeCustomerId: "cus_123" },
      { key: "passer-by" },
    ]);
    expect(upserted).toMatchObject([{ key: SUBJECT, displayName: "Acme Inc." }, { key: "passer-by" }]);
    const acme = await om.subjects.get(SUBJECT);
    expect(acme).toMatchObject({ key: SUBJECT, displayName: "Acme Inc.", metadata: { plan: "pro" }, stripeCustomerId: "cus_123" });
    expect(acme.createdAt).toBeInstanceOf(Date);
    expect(await om.subjects.get(acme.id)).toMatchObject({ key: SUBJECT });
    expect((await om.subjects.list()).map((s) => s.key).sort()).toEqual([SUBJECT, "passer-by"]);

    await om.subjects.delete("passer-by");
    expect((await om.subjects.list()).map((s) => s.key)).toEqual([SUBJECT]);
    expect(await failure(om.subjects.get("passer-by"))).toBe(404);
  });

  it("features: create (with group-by filters), list, get, archive", async () => {
    const tokens = await om.features.create({ key: "tokens", name: "Tokens", meterSlug: "tokens" });
    const proGpt4 = await om.features.create({
      key: "pro_gpt4",
      name: "GPT-4 on pro",
      meterSlug: "tokens",
      meterGroupByFilters: { model: "gpt-4" },
      advancedMeterGroupByFilters: { tier: { $eq: "pro" } },
    });
    await om.features.create({ key: "sso", name: "SSO" });
    await om.features.create({ key: "seats", name: "Seats" });
    const old = await om.features.create({ key: "old", name: "Old" });

    expect(await om.features.get(proGpt4.id)).toMatchObject({
      key: "pro_gpt4",
      meterSlug: "tokens",
      meterGroupByFilters: { model: "gpt-4" },
      advancedMeterGroupByFilters: { tier: { $eq: "pro" } },
    });
    expect(await om.features.get("tokens")).toMatchObject({ id: tokens.id });

    await om.features.delete(old.id);
    expect((await om.features.get(old.id)).archivedAt).toBeInstanceOf(Date);
    expect((await om.features.list()).map((f) => f.key).sort()).toEqual(["pro_gpt4", "seats", "sso", "tokens"]);
    expect((await om.features.list({ includeArchived: true })).map((f) => f.key)).toContain("old");
    expect((await om.features.list({ meterSlug: ["tokens"] })).map((f) => f.key).sort()).toEqual(["pro_gpt4", "tokens"]);
  });

  it("entitlements and grants: metered, boolean, static; value, grants, history, reset, override", async () => {
    const ents = om.entitlementsV1;
    const usagePeriod = { interval: "MONTH" as const, anchor: new Date(Date.now() - 86_400_000) };
    const measureUsageFrom = "CURRENT_PERIOD_START" as const; // the default is the creation time
    const metered = await ents.create(SUBJECT, { type: "metered", featureKey: "tokens", usagePeriod, measureUsageFrom, issueAfterReset: 1000 });
    const filtered = await ents.create(SUBJECT, { type: "metered", featureKey: "pro_gpt4", usagePeriod, measureUsageFrom, issueAfterReset: 500 });
    const sso = await ents.create(SUBJECT, { type: "boolean", featureKey: "sso" });
    const seats = await ents.create(SUBJECT, { type: "static", featureKey: "seats", config: JSON.stringify({ seats: 5 }) });
    expect(metered).toMatchObject({ type: "metered", featureKey: "tokens", subjectKey: SUBJECT, issueAfterReset: 1000 });

    expect(await ents.value(SUBJECT, "tokens")).toMatchObject({ hasAccess: true, usage: 190, balance: 810 });
    // The feature's filters (model gpt-4 and tier pro) hold in the entitlement: 100 + 3.
    expect(await ents.value(SUBJECT, filtered.id)).toMatchObject({ usage: 103, balance: 397 });
    expect(await ents.value(SUBJECT, "sso")).toMatchObject({ hasAccess: true });
    expect(JSON.parse((await ents.value(SUBJECT, "seats")).config!)).toEqual({ seats: 5 });

    expect((await ents.list({ subject: [SUBJECT] })).map((e) => e.id).sort()).toEqual([metered.id, filtered.id, sso.id, seats.id].sort());
    expect((await ents.list({ entitlementType: ["boolean"] })).map((e) => e.id)).toEqual([sso.id]);
    expect(await ents.get(metered.id)).toMatchObject({ id: metered.id, featureKey: "tokens" });

    // Grants: one on top of issueAfterReset, listed per entitlement and namespace-wide, then voided.
    const grant = await ents.grants.create(SUBJECT, "tokens", { amount: 500, priority: 1, effectiveAt: new Date(), expiration: { duration: "MONTH", count: 1 } });
    expect(grant).toMatchObject({ amount: 500, entitlementId: metered.id });
    expect(await ents.value(SUBJECT, "tokens")).toMatchObject({ usage: 190, balance: 1310 });
    expect((await ents.grants.list(SUBJECT, "tokens")).map((g) => g.id)).toContain(grant.id);
    // Without page/pageSize, a plain array (1000 from issueAfterReset, and the grant).
    const all = (await ents.grants.listAll({ subject: [SUBJECT], feature: ["tokens"] })) as Array<{ id: string; amount: number }>;
    expect(all.map((g) => g.amount).sort()).toEqual([1000, 500]);
    expect(all.map((g) => g.id)).toContain(grant.id);
    await ents.grants.void(grant.id);
    expect(await ents.value(SUBJECT, "tokens")).toMatchObject({ usage: 190, balance: 810 });

    const history = await ents.history(SUBJECT, metered.id, { windowSize: "HOUR", from });
    expect(sum(history.windowedHistory.map((w) => ({ value: w.usage })))).toBe(190);
    expect(history.burndownHistory.length).toBeGreaterThan(0);

    await ents.reset(SUBJECT, metered.id, { retainAnchor: true });
    expect(await ents.value(SUBJECT, "tokens")).toMatchObject({ usage: 0, balance: 1000 });

    const replaced = await ents.override(SUBJECT, "seats", { type: "static", featureKey: "seats", config: JSON.stringify({ seats: 10 }) });
    expect(replaced.id).not.toBe(seats.id);
    expect(JSON.parse((await ents.value(SUBJECT, "seats")).config!)).toEqual({ seats: 10 });
    expect((await ents.list({ feature: ["seats"] })).map((e) => e.id)).toEqual([replaced.id]);

    await ents.delete(SUBJECT, replaced.id);
    expect(await failure(ents.value(SUBJECT, "seats"))).toBe(404);
  });

  it("notifications: channels, rules, and the events of a threshold crossing", async () => {
    const n = om.notifications;
    const channel = await n.channels.create({ type: "WEBHOOK", name: "hooks", url: rx.url("sdk"), signingSecret: rx.secret });
    expect(await n.channels.get(channel.id)).toMatchObject({ id: channel.id, type: "WEBHOOK", url: rx.url("sdk") });
    const renamed = await n.channels.update(channel.id, { type: "WEBHOOK", name: "renamed", url: rx.url("sdk"), signingSecret: rx.secret });
    expect(renamed).toMatchObject({ id: channel.id, name: "renamed" });
    expect((await n.channels.list()).items.map((c) => c.id)).toEqual([channel.id]);

    const body = { type: "entitlements.balance.threshold" as const, name: "half", channels: [channel.id], features: ["tokens"], thresholds: [{ type: "usage_value" as const, value: 500 }] };
    const rule = await n.rules.create(body);
    expect(await n.rules.get(rule.id)).toMatchObject({ id: rule.id, name: "half", channels: [{ id: channel.id }] });
    const updated = await n.rules.update(rule.id, { ...body, name: "60 percent", thresholds: [{ type: "usage_percentage", value: 60 }] });
    expect(updated).toMatchObject({ id: rule.id, name: "60 percent", thresholds: [{ type: "usage_percentage", value: 60 }] });
    expect((await n.rules.list({ feature: ["tokens"] })).items.map((r) => r.id)).toEqual([rule.id]);

    // Usage was reset to 0 of 1000: 650 tokens cross 60 %.
    await om.events.ingest({ ...prompt(650, "o3", "free"), time: new Date() });
    const delivery = await rx.waitFor((d) => d.name === "sdk" && d.payload?.data?.subject?.key === SUBJECT, 20_000);
    expect(delivery).toMatchObject({ valid: true, payload: { type: "entitlements.balance.threshold", data: { value: { usage: 650 } } } });

    // The event and its delivery status, as the list shows them once the status has reached D1.
    const deadline = Date.now() + 20_000;
    let events = await n.events.list({ rule: [rule.id] });
    while (events.items[0]?.deliveryStatus[0]?.state !== "SUCCESS" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      events = await n.events.list({ rule: [rule.id] });
    }
    expect(events.items).toHaveLength(1);
    const event = events.items[0]!;
    expect(event).toMatchObject({ id: delivery!.id, type: "entitlements.balance.threshold", rule: { id: rule.id } });
    expect(event.deliveryStatus).toMatchObject([{ state: "SUCCESS", channel: { id: channel.id } }]);
    expect(event.createdAt).toBeInstanceOf(Date);
    expect(await n.events.get(event.id)).toMatchObject({ id: event.id });
    expect((await n.events.list({ subject: [SUBJECT], feature: ["sso"] })).items).toHaveLength(0);

    await n.rules.delete(rule.id);
    expect((await n.rules.list()).items).toHaveLength(0);
    await n.channels.delete(channel.id);
    // As OpenMeter's lookup does, a deleted channel is still answered, with its deletion time.
    expect((await n.channels.get(channel.id)).deletedAt).toBeInstanceOf(Date);
  });

  it("portal tokens: create, list, query with the token, invalidate", async () => {
    const created = await om.portal.create({ subject: SUBJECT, allowedMeterSlugs: ["tokens"] });
    expect(created).toMatchObject({ subject: SUBJECT, allowedMeterSlugs: ["tokens"], expired: false });
    expect(created.token).toMatch(/^em_portal_/);
    expect(created.expiresAt).toBeInstanceOf(Date);
    const listed = await om.portal.list();
    expect(listed.map((t) => t.id)).toEqual([created.id]);
    expect(listed[0]!.token).toBeUndefined();

    const portal = new PortalClient({ baseUrl: gw.baseUrl, portalToken: created.token! });
    const usage = await portal.query("tokens", { from, windowSize: "HOUR", groupBy: ["model"] });
    expect(byKey(usage.data, "model")).toEqual({ "gpt-4": 133, o3: 707 });
    expect(await failure(portal.query("doomed", { from }))).toBe(403);

    await om.portal.invalidate({ id: created.id! });
    expect(await om.portal.list()).toEqual([]);
    expect(await failure(portal.query("tokens", { from }))).toBe(401);
  });

  it("answers the SDK calls it does not serve as the README says", async () => {
    // No debug metrics route: a 404 problem, which the SDK turns into an HTTPError.
    expect(await failure(om.debug.getMetrics())).toBe(404);
  });
});
