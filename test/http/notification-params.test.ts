import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { notificationEvents } from "../../src/db/schema";
import { ulid } from "../../src/domain/ids";
import { api, createKey, expectProblem, ingestOk, uid } from "../helpers/api";
import { setup, usage } from "../helpers/entitlements";
import { eventually, notifyOn, outbox } from "../helpers/notifications";

const hook = (name: string) => `https://receiver.test/hooks/${name}`;
const ids = (res: { body: any }) => res.body.items.map((i: { id: string }) => i.id) as string[];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An admin key of a namespace of its own, so a list holds exactly what the test made. */
async function own(): Promise<string> {
  return (await createKey({ scopes: ["admin"], namespace: uid("ns").toLowerCase() })).key;
}

async function channel(key: string): Promise<any> {
  const res = await api("POST", "/api/v1/notification/channels", { key, body: { type: "WEBHOOK", name: uid("ch"), url: hook(uid("h")) } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function listed(key: string, path: string, q: string): Promise<string[]> {
  const res = await api("GET", `${path}?${q}`, { key });
  expect(res.status, res.text).toBe(200);
  return ids(res);
}

describe("GET /api/v1/notification/channels", () => {
  it("includeDeleted lists deleted channels too, with their deletedAt", async () => {
    const key = await own();
    const [a, b] = [await channel(key), await channel(key)];
    expect((await api("DELETE", `/api/v1/notification/channels/${b.id}`, { key })).status).toBe(204);
    expect(await listed(key, "/api/v1/notification/channels", "")).toEqual([a.id]);
    expect(await listed(key, "/api/v1/notification/channels", "includeDeleted=false")).toEqual([a.id]);
    const res = await api("GET", "/api/v1/notification/channels?includeDeleted=true", { key });
    expect(ids(res)).toEqual([a.id, b.id]);
    expect(res.body.items[0].deletedAt).toBeUndefined();
    expect(res.body.items[1].deletedAt).toEqual(expect.any(String));
  });

  it("order and orderBy (id by default, ascending); an unknown orderBy is 400", async () => {
    const key = await own();
    const [a, b, c] = [await channel(key), await channel(key), await channel(key)];
    await sleep(5);
    const put = await api("PUT", `/api/v1/notification/channels/${a.id}`, { key, body: { type: "WEBHOOK", name: a.name, url: a.url } });
    expect(put.status, put.text).toBe(200);
    const path = "/api/v1/notification/channels";
    expect(await listed(key, path, "")).toEqual([a.id, b.id, c.id]);
    expect(await listed(key, path, "order=DESC")).toEqual([c.id, b.id, a.id]);
    expect(await listed(key, path, "orderBy=updatedAt")).toEqual([b.id, c.id, a.id]);
    expect(await listed(key, path, "orderBy=updatedAt&order=DESC")).toEqual([a.id, c.id, b.id]);
    expect(await listed(key, path, "orderBy=createdAt&order=DESC&pageSize=1&page=2")).toEqual([b.id]);
    expect(await listed(key, path, "orderBy=type&order=DESC")).toEqual([c.id, b.id, a.id]);
    const bad = await api("GET", `${path}?orderBy=name`, { key });
    expectProblem(bad, 400, "validation_failed");
    expect(bad.body.errors[0].field).toBe("orderBy");
    expectProblem(await api("GET", `${path}?order=down`, { key }), 400, "validation_failed");
  });
});

describe("GET /api/v1/notification/rules", () => {
  it("order and orderBy (id by default, ascending); an unknown orderBy is 400", async () => {
    const key = await own();
    const ch = await channel(key);
    const make = async (type: string) => {
      const res = await api("POST", "/api/v1/notification/rules", {
        key,
        body: { type, name: uid("r"), channels: [ch.id], ...(type === "entitlements.balance.threshold" ? { thresholds: [{ type: "usage_value", value: 1 }] } : {}) },
      });
      expect(res.status, res.text).toBe(201);
      return res.body;
    };
    const a = await make("entitlements.reset");
    const b = await make("entitlements.balance.threshold");
    const c = await make("entitlements.reset");
    await sleep(5);
    const { id: _id, createdAt: _c, updatedAt: _u, channels: _ch, ...same } = a;
    const put = await api("PUT", `/api/v1/notification/rules/${a.id}`, { key, body: { ...same, channels: [ch.id] } });
    expect(put.status, put.text).toBe(200);
    const path = "/api/v1/notification/rules";
    expect(await listed(key, path, "")).toEqual([a.id, b.id, c.id]);
    expect(await listed(key, path, "order=DESC")).toEqual([c.id, b.id, a.id]);
    expect(await listed(key, path, "orderBy=updatedAt")).toEqual([b.id, c.id, a.id]);
    expect(await listed(key, path, "orderBy=createdAt&order=DESC")).toEqual([c.id, b.id, a.id]);
    // entitlements.balance.threshold sorts before entitlements.reset; ties by id.
    expect(await listed(key, path, "orderBy=type")).toEqual([b.id, a.id, c.id]);
    expect(await listed(key, path, "orderBy=type&order=DESC&pageSize=2")).toEqual([c.id, a.id]);
    const bad = await api("GET", `${path}?orderBy=name`, { key });
    expectProblem(bad, 400, "validation_failed");
    expect(bad.body.errors[0].field).toBe("orderBy");
  });
});

describe("GET /api/v1/notification/events", () => {
  it("order and orderBy (createdAt, newest first by default); an unknown orderBy is 400", async () => {
    const namespace = uid("ns").toLowerCase();
    const key = (await createKey({ scopes: ["read"], namespace })).key;
    const now = Date.now();
    // Ids in one order, creation times in another: e0 < e1 < e2 by id; e1, e2, e0 by createdAt.
    const e = [0, 1, 2].map((i) => ulid(now + i));
    const created = [now + 30, now + 10, now + 20];
    await database(env.DB)
      .insert(notificationEvents)
      .values(e.map((id, i) => ({ id, namespace, ruleId: ulid(now), type: "entitlements.reset", subject: "s", featureKey: "f", featureId: null, createdAt: created[i]!, payload: {}, deliveries: [] })));
    const path = "/api/v1/notification/events";
    expect(await listed(key, path, "")).toEqual([e[0], e[2], e[1]]);
    expect(await listed(key, path, "order=ASC")).toEqual([e[1], e[2], e[0]]);
    expect(await listed(key, path, "orderBy=createdAt&order=DESC")).toEqual([e[0], e[2], e[1]]);
    expect(await listed(key, path, "orderBy=id&order=ASC")).toEqual([e[0], e[1], e[2]]);
    expect(await listed(key, path, "orderBy=id")).toEqual([e[2], e[1], e[0]]);
    expect(await listed(key, path, "orderBy=id&order=ASC&pageSize=1&page=3")).toEqual([e[2]]);
    const bad = await api("GET", `${path}?orderBy=updatedAt`, { key });
    expectProblem(bad, 400, "validation_failed");
    expect(bad.body.errors[0].field).toBe("orderBy");
  });
});

describe("POST /api/v1/notification/events/{eventId}/resend", () => {
  it("refuses (400, naming it) a channel the event was not sent to, instead of resending to the others alone", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    const { rule, channel: sent } = await notifyOn(s, [{ type: "usage_value", value: 1 }]);
    await ingestOk([usage(s, { tokens: 2 })]);
    const list = await eventually(() => api("GET", `/api/v1/notification/events?rule=${rule.id}`), (r) => r.body?.items?.[0]?.deliveryStatus?.[0]?.state === "SUCCESS");
    const ev = list.body.items[0];
    expect(ev?.deliveryStatus?.[0]?.state, list.text).toBe("SUCCESS");
    const other = await channel("test-admin-key");

    const bad = await api("POST", `/api/v1/notification/events/${ev.id}/resend`, { body: { channels: [sent.id, other.id] } });
    expectProblem(bad, 400, "validation_failed");
    expect(bad.body.errors).toEqual([{ field: "channels.1", message: expect.stringContaining(other.id) }]);
    expect((await outbox(s.subject)).map((d) => d.state)).toEqual(["SUCCESS"]);

    // Spec-valid: more than five entries (here the same channel repeated) are read as the set they name.
    const ok = await api("POST", `/api/v1/notification/events/${ev.id}/resend`, { body: { channels: Array(6).fill(sent.id) } });
    expect(ok.status, ok.text).toBe(202);
  });
});

describe("GET one deleted channel or rule", () => {
  it("answers it with its deletedAt (as includeDeleted lists it); PUT and DELETE still 404", async () => {
    const key = await own();
    const ch = await channel(key);
    const keep = await channel(key);
    const rule = await api("POST", "/api/v1/notification/rules", { key, body: { type: "entitlements.reset", name: uid("r"), channels: [ch.id] } });
    expect(rule.status, rule.text).toBe(201);
    expect((await api("DELETE", `/api/v1/notification/rules/${rule.body.id}`, { key })).status).toBe(204);
    expect((await api("DELETE", `/api/v1/notification/channels/${ch.id}`, { key })).status).toBe(204);

    const gotCh = await api("GET", `/api/v1/notification/channels/${ch.id}`, { key });
    expect(gotCh.status, gotCh.text).toBe(200);
    expect(gotCh.body).toMatchObject({ id: ch.id, name: ch.name, deletedAt: expect.any(String) });
    expect((await api("GET", `/api/v1/notification/channels/${keep.id}`, { key })).body.deletedAt).toBeUndefined();
    const gotRule = await api("GET", `/api/v1/notification/rules/${rule.body.id}`, { key });
    expect(gotRule.status, gotRule.text).toBe(200);
    expect(gotRule.body).toMatchObject({ id: rule.body.id, name: rule.body.name, deletedAt: expect.any(String) });

    expectProblem(await api("PUT", `/api/v1/notification/channels/${ch.id}`, { key, body: { type: "WEBHOOK", name: "x", url: hook("x") } }), 404, "not_found");
    expectProblem(await api("DELETE", `/api/v1/notification/channels/${ch.id}`, { key }), 404, "not_found");
    expectProblem(await api("PUT", `/api/v1/notification/rules/${rule.body.id}`, { key, body: { type: "entitlements.reset", name: "x", channels: [keep.id] } }), 404, "not_found");
    expectProblem(await api("DELETE", `/api/v1/notification/rules/${rule.body.id}`, { key }), 404, "not_found");
    expectProblem(await api("POST", `/api/v1/notification/rules/${rule.body.id}/test`, { key }), 404, "not_found");
  });
});
