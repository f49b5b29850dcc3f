import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { notificationEvents, notificationRules } from "../../src/db/schema";
import { ulid } from "../../src/domain/ids";
import { api, createKey, ingestOk, uid } from "../helpers/api";
import { setup, usage, type Setup } from "../helpers/entitlements";
import { eventually, notifyOn } from "../helpers/notifications";

const LIMIT = { issueAfterReset: 100 };

/** A setup whose one threshold rule (on its feature, to its own channel) has fired; its event as listed by rule. */
async function fired(): Promise<{ s: Setup; rule: any; channel: any; event: any; featureId: string }> {
  const s = await setup({ entitlement: LIMIT });
  const { rule, channel } = await notifyOn(s, [{ type: "usage_value", value: 1 }]);
  await ingestOk([usage(s, { tokens: 2 })]);
  const list = await eventually(() => api("GET", `/api/v1/notification/events?rule=${rule.id}`), (r) => r.body?.items?.length === 1);
  expect(list.body.items, list.text).toHaveLength(1);
  return { s, rule, channel, event: list.body.items[0], featureId: rule.features[0].id };
}

const ids = (res: { body: any }) => res.body.items.map((i: { id: string }) => i.id);

/** How many D1 statements `fn` prepares: the handler runs in this isolate, on this binding's class. */
async function countD1(fn: () => Promise<unknown>): Promise<number> {
  const proto = Object.getPrototypeOf(env.DB) as { prepare: (q: string) => unknown };
  const original = proto.prepare;
  let n = 0;
  proto.prepare = function (this: unknown, q: string) {
    n++;
    return original.call(this, q);
  };
  try {
    await fn();
  } finally {
    proto.prepare = original;
  }
  return n;
}

describe("notification events: the rule", () => {
  it("is the whole rule, with its features' keys, also after the rule was deleted", async () => {
    const { s, rule, event, featureId } = await fired();
    expect(event.rule).toMatchObject({ id: rule.id, name: rule.name, type: "entitlements.balance.threshold", features: [{ id: featureId, key: s.feature }] });
    expect((await api("DELETE", `/api/v1/notification/rules/${rule.id}`)).status).toBe(204);
    const one = await api("GET", `/api/v1/notification/events/${event.id}`);
    expect(one.status, one.text).toBe(200);
    const listed = (await api("GET", `/api/v1/notification/events?rule=${rule.id}`)).body.items[0];
    for (const shown of [one.body.rule, listed.rule]) {
      expect(shown).toMatchObject({
        id: rule.id,
        type: "entitlements.balance.threshold",
        name: rule.name,
        channels: rule.channels,
        thresholds: rule.thresholds,
        features: [{ id: featureId, key: s.feature }],
        createdAt: rule.createdAt,
        deletedAt: expect.any(String),
      });
    }
  });

  it("a page of 1,000 events costs a few D1 queries, not one per event", async () => {
    const namespace = uid("ns").toLowerCase();
    const key = (await createKey({ scopes: ["read"], namespace })).key;
    const db = database(env.DB);
    const now = Date.now();
    // 150 events of 150 rules (some deleted): more rules than one statement could bind one by one.
    const rules = Array.from({ length: 150 }, (_, i) => ({
      id: ulid(now + i),
      namespace,
      type: "entitlements.reset",
      name: `r${i}`,
      disabled: false,
      channels: [ulid(now)],
      features: [],
      thresholds: [],
      metadata: null,
      createdAt: now,
      updatedAt: now,
      deletedAt: i % 3 === 0 ? now : null,
    }));
    for (let i = 0; i < rules.length; i += 8) await db.insert(notificationRules).values(rules.slice(i, i + 8));
    const events = rules.map((r, i) => ({ id: ulid(now + 1000 + i), namespace, ruleId: r.id, type: r.type, subject: "s", featureKey: "f", featureId: null, createdAt: now + i, payload: {}, deliveries: [] }));
    for (let i = 0; i < events.length; i += 8) await db.insert(notificationEvents).values(events.slice(i, i + 8));

    let res: any;
    const queries = await countD1(async () => (res = await api("GET", "/api/v1/notification/events?pageSize=1000", { key })));
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toHaveLength(150);
    expect(res.body.items.every((e: any) => e.rule.name === `r${rules.findIndex((r) => r.id === e.rule.id)}`)).toBe(true);
    // The API key lookup, the page and its count, the rules.
    expect(queries).toBeLessThanOrEqual(5);
  });
});

describe("notification events: filters", () => {
  it("feature by id or key, subject by id or key, channel by id", async () => {
    const a = await fired();
    const b = await fired();
    const only = (res: { status: number; text: string; body: any }, want: string) => {
      expect(res.status, res.text).toBe(200);
      expect(ids(res)).toContain(want);
      expect(ids(res)).not.toContain(want === a.event.id ? b.event.id : a.event.id);
    };
    only(await api("GET", `/api/v1/notification/events?feature=${a.featureId}`), a.event.id);
    only(await api("GET", `/api/v1/notification/events?feature=${b.s.feature}`), b.event.id);
    const subjectB = await api("GET", `/api/v1/subjects/${b.s.subject}`);
    expect(subjectB.status, subjectB.text).toBe(200);
    only(await api("GET", `/api/v1/notification/events?subject=${subjectB.body.id}`), b.event.id);
    only(await api("GET", `/api/v1/notification/events?subject=${a.s.subject}`), a.event.id);
    only(await api("GET", `/api/v1/notification/events?channel=${a.channel.id}`), a.event.id);
    only(await api("GET", `/api/v1/notification/events?channel=${b.channel.id}&feature=${b.featureId}&subject=${b.s.subject}`), b.event.id);
    const both = await api("GET", `/api/v1/notification/events?channel=${a.channel.id}&channel=${b.channel.id}`);
    expect(ids(both)).toEqual(expect.arrayContaining([a.event.id, b.event.id]));
    expect((await api("GET", `/api/v1/notification/events?channel=01ARZ3NDEKTSV4RRFFQ69G5FAV`)).body.totalCount).toBe(0);
  });
});

describe("migration 0008", () => {
  it("gives events mirrored before it their feature id, so the feature filter finds them by id", async () => {
    const namespace = uid("ns").toLowerCase();
    const key = (await createKey({ scopes: ["read"], namespace })).key;
    const featureId = ulid(Date.now());
    const id = ulid(Date.now());
    const payload = { id, type: "entitlements.reset", data: { feature: { id: featureId, key: "old_feature" } } };
    await database(env.DB).insert(notificationEvents).values({ id, namespace, ruleId: ulid(Date.now()), type: "entitlements.reset", subject: "s", featureKey: "old_feature", featureId: null, createdAt: Date.now(), payload, deliveries: [] });
    expect((await api("GET", `/api/v1/notification/events?feature=${featureId}`, { key })).body.totalCount).toBe(0);
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0008_"))!;
    for (const q of migration.queries.filter((q) => /^\s*(--.*\n\s*)*UPDATE/.test(q))) await env.DB.prepare(q).run();
    expect(ids(await api("GET", `/api/v1/notification/events?feature=${featureId}`, { key }))).toEqual([id]);
  });
});

describe("notification rules list", () => {
  it("filters by feature id or key (rules without a feature list apply to every feature) and lists deleted rules on request", async () => {
    const a = await fired();
    const b = await fired();
    const everyFeature = await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.reset", name: uid("all"), channels: [a.channel.id] } });
    expect(everyFeature.status, everyFeature.text).toBe(201);
    const listed = async (q: string) => {
      const res = await api("GET", `/api/v1/notification/rules?pageSize=1000&${q}`);
      expect(res.status, res.text).toBe(200);
      return ids(res) as string[];
    };
    for (const f of [a.featureId, a.s.feature]) {
      const got = await listed(`feature=${f}`);
      expect(got).toEqual(expect.arrayContaining([a.rule.id, everyFeature.body.id]));
      expect(got).not.toContain(b.rule.id);
    }
    expect(await listed(`feature=${a.s.feature}&feature=${b.featureId}`)).toEqual(expect.arrayContaining([a.rule.id, b.rule.id]));

    expect((await api("DELETE", `/api/v1/notification/rules/${b.rule.id}`)).status).toBe(204);
    expect(await listed(`feature=${b.featureId}`)).not.toContain(b.rule.id);
    const withDeleted = await api("GET", `/api/v1/notification/rules?pageSize=1000&includeDeleted=true&feature=${b.s.feature}`);
    const deleted = withDeleted.body.items.find((r: { id: string }) => r.id === b.rule.id);
    expect(deleted, withDeleted.text).toMatchObject({ id: b.rule.id, features: [{ id: b.featureId, key: b.s.feature }], deletedAt: expect.any(String) });
    expect(withDeleted.body.items.find((r: { id: string }) => r.id === everyFeature.body.id).deletedAt).toBeUndefined();
  });
});
