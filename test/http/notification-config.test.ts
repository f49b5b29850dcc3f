import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { api, createKey, expectProblem, uid } from "../helpers/api";

const hook = (name: string, q = "") => `https://receiver.test/hooks/${name}${q}`;

async function channel(body: Record<string, unknown>) {
  const res = await api("POST", "/api/v1/notification/channels", { body: { type: "WEBHOOK", name: uid("ch"), ...body } });
  return res;
}

describe("notification channels", () => {
  it("creates a webhook channel with a generated whsec_ secret, lists and gets it", async () => {
    const res = await channel({ url: hook(uid("a")), customHeaders: { "x-team": "billing" } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/=]{32,100}$/);
    expect(res.body.customHeaders).toEqual({ "x-team": "billing" });
    const got = await api("GET", `/api/v1/notification/channels/${res.body.id}`);
    expect(got.body).toEqual(res.body);
    const list = await api("GET", "/api/v1/notification/channels?pageSize=1000");
    expect(list.body.items.map((c: { id: string }) => c.id)).toContain(res.body.id);
    expect(list.body).toMatchObject({ page: 1, pageSize: 1000 });
  });

  it("accepts OpenMeter's secret pattern (with or without whsec_) and refuses others", async () => {
    const secret = "whsec_" + btoa("0123456789abcdef0123456789abcdef");
    expect((await channel({ url: hook(uid("b")), signingSecret: secret })).body.signingSecret).toBe(secret);
    expectProblem(await channel({ url: hook(uid("b")), signingSecret: "short" }), 400, "validation_failed");
  });

  it("refuses reserved or malformed custom headers", async () => {
    const res = await channel({ url: hook(uid("c")), customHeaders: { "webhook-signature": "forged" } });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors[0].field).toBe("customHeaders.webhook-signature");
    expectProblem(await channel({ url: hook(uid("c")), customHeaders: { "bad header": "x" } }), 400, "validation_failed");
  });

  it("refuses custom header values with line breaks or control characters, on create and on replace", async () => {
    for (const value of ["a\r\nX-Injected: 1", "a\nb", "a\u0000b", "caf\u00e9"]) {
      const res = await channel({ url: hook(uid("c")), customHeaders: { "x-team": value } });
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors).toEqual([{ field: "customHeaders.x-team", message: expect.stringContaining("printable ASCII") }]);
    }
    const ok = await channel({ url: hook(uid("c")), customHeaders: { "x-team": "billing\tteam <ops@example.com>" } });
    expect(ok.status, ok.text).toBe(201);
    const put = await api("PUT", `/api/v1/notification/channels/${ok.body.id}`, { body: { type: "WEBHOOK", name: "c", url: ok.body.url, customHeaders: { "x-team": "a\r\nb" } } });
    expectProblem(put, 400, "validation_failed");
    expect((await api("GET", `/api/v1/notification/channels/${ok.body.id}`)).body.customHeaders).toEqual({ "x-team": "billing\tteam <ops@example.com>" });
  });

  it("allows http/loopback only when ALLOW_INSECURE_WEBHOOKS is set (it is, in this suite)", async () => {
    expect(env.ALLOW_INSECURE_WEBHOOKS).toBe("true");
    expect((await channel({ url: "http://127.0.0.1:9/hook" })).status).toBe(201);
    expectProblem(await channel({ url: "ftp://example.com/" }), 400, "validation_failed");
  });

  it("cannot delete a channel a rule uses; can after the rule is gone", async () => {
    const ch = (await channel({ url: hook(uid("d")) })).body;
    const rule = await api("POST", "/api/v1/notification/rules", {
      body: { type: "entitlements.balance.threshold", name: "r", channels: [ch.id], thresholds: [{ type: "usage_percentage", value: 80 }] },
    });
    expect(rule.status, rule.text).toBe(201);
    expectProblem(await api("DELETE", `/api/v1/notification/channels/${ch.id}`), 409, "conflict");
    expect((await api("DELETE", `/api/v1/notification/rules/${rule.body.id}`)).status).toBe(204);
    expect((await api("DELETE", `/api/v1/notification/channels/${ch.id}`)).status).toBe(204);
    // Deleted, not gone: GET shows it with its deletedAt (as OpenMeter does); it can no longer be changed.
    expect((await api("GET", `/api/v1/notification/channels/${ch.id}`)).body.deletedAt).toEqual(expect.any(String));
    expectProblem(await api("DELETE", `/api/v1/notification/channels/${ch.id}`), 404, "not_found");
  });

  it("is invisible to another namespace and needs admin to change", async () => {
    const ch = (await channel({ url: hook(uid("e")) })).body;
    const other = await createKey({ scopes: ["admin"], namespace: uid("ns").toLowerCase() });
    expectProblem(await api("GET", `/api/v1/notification/channels/${ch.id}`, { key: other.key }), 404, "not_found");
    const reader = await createKey({ scopes: ["read"] });
    expectProblem(await api("POST", "/api/v1/notification/channels", { key: reader.key, body: { type: "WEBHOOK", name: "x", url: hook("x") } }), 403, "forbidden");
  });
});

describe("notification rules", () => {
  it("validates thresholds (1–10, known types), channels (1–5, existing) and features", async () => {
    const ch = (await channel({ url: hook(uid("f")) })).body;
    const base = { type: "entitlements.balance.threshold", name: "r", channels: [ch.id] };
    expectProblem(await api("POST", "/api/v1/notification/rules", { body: { ...base, thresholds: [] } }), 400, "validation_failed");
    const eleven = Array.from({ length: 11 }, (_, i) => ({ type: "usage_value", value: i + 1 }));
    expectProblem(await api("POST", "/api/v1/notification/rules", { body: { ...base, thresholds: eleven } }), 400, "validation_failed");
    expectProblem(await api("POST", "/api/v1/notification/rules", { body: { ...base, thresholds: [{ type: "bogus", value: 1 }] } }), 400, "validation_failed");
    const missing = await api("POST", "/api/v1/notification/rules", { body: { ...base, channels: ["01ARZ3NDEKTSV4RRFFQ69G5FAV"], thresholds: [{ type: "NUMBER", value: 1 }] } });
    expectProblem(missing, 400, "validation_failed");
    expect(missing.body.errors[0].field).toBe("channels.0");
    expectProblem(await api("POST", "/api/v1/notification/rules", { body: { ...base, features: ["no-such-feature"], thresholds: [{ type: "NUMBER", value: 1 }] } }), 400, "validation_failed");
  });

  it("names each feature by id and key wherever the rule is shown, and leaves out metadata it does not have", async () => {
    const ch = (await channel({ url: hook(uid("k")) })).body;
    expect(ch.metadata).toBeUndefined();
    const key = uid("feat");
    const feature = (await api("POST", "/api/v1/features", { body: { key, name: "f" } })).body;
    const created = await api("POST", "/api/v1/notification/rules", {
      body: { type: "entitlements.balance.threshold", name: "by key", channels: [ch.id], features: [key], thresholds: [{ type: "NUMBER", value: 1 }] },
    });
    expect(created.status, created.text).toBe(201);
    const named = [{ id: feature.id, key }];
    expect(created.body.features).toEqual(named);
    expect(created.body.metadata).toBeUndefined();
    const got = await api("GET", `/api/v1/notification/rules/${created.body.id}`);
    expect(got.body.features).toEqual(named);
    expect("metadata" in got.body).toBe(false);
    const listed = await api("GET", "/api/v1/notification/rules?pageSize=1000");
    expect(listed.body.items.find((r: { id: string }) => r.id === created.body.id).features).toEqual(named);
    const withMeta = await api("PUT", `/api/v1/notification/channels/${ch.id}`, { body: { type: "WEBHOOK", name: "c", url: ch.url, metadata: { team: "billing" } } });
    expect(withMeta.body.metadata).toEqual({ team: "billing" });
  });

  it("accepts legacy NUMBER/PERCENT and the reset rule type; PUT replaces", async () => {
    const ch = (await channel({ url: hook(uid("g")) })).body;
    const created = await api("POST", "/api/v1/notification/rules", {
      body: { type: "entitlements.balance.threshold", name: "legacy", channels: [ch.id], thresholds: [{ type: "PERCENT", value: 50 }, { type: "NUMBER", value: 10 }] },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.channels).toEqual([{ id: ch.id, type: "WEBHOOK" }]);
    const put = await api("PUT", `/api/v1/notification/rules/${created.body.id}`, {
      body: { type: "entitlements.balance.threshold", name: "renamed", channels: [ch.id], thresholds: [{ type: "usage_value", value: 5 }], disabled: true },
    });
    expect(put.body).toMatchObject({ name: "renamed", disabled: true, thresholds: [{ type: "usage_value", value: 5 }] });
    const reset = await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.reset", name: "resets", channels: [ch.id] } });
    expect(reset.status).toBe(201);
    expect(reset.body.thresholds).toBeUndefined();
  });

  it("test sends one signed event to each channel of the rule", async () => {
    const name = uid("t");
    const secret = "whsec_" + btoa("fedcba9876543210fedcba9876543210");
    const ch = (await channel({ url: hook(name), signingSecret: secret })).body;
    const rule = (await api("POST", "/api/v1/notification/rules", { body: { type: "entitlements.balance.threshold", name: "t", channels: [ch.id], thresholds: [{ type: "usage_value", value: 1 }] } })).body;
    const res = await api("POST", `/api/v1/notification/rules/${rule.id}/test`);
    expect(res.status, res.text).toBe(201);
    expect(res.body.deliveryStatus[0]).toMatchObject({ state: "SUCCESS", channel: { id: ch.id } });
    // The made-up subject's key fits OpenMeter's pattern for an entitlement's subjectKey (and featureKey).
    const { entitlement, subject } = res.body.payload.data;
    expect(entitlement.subjectKey).toMatch(/^[a-z0-9]+(?:_[a-z0-9]+)*$/);
    expect(entitlement.featureKey).toMatch(/^[a-z0-9]+(?:_[a-z0-9]+)*$/);
    expect(subject.key).toBe(entitlement.subjectKey);
    const got = (await (await env.RECEIVER.fetch(`http://r/deliveries?name=${name}`)).json()) as { headers: Record<string, string>; body: string }[];
    expect(got).toHaveLength(1);
    const verified = new Webhook(secret).verify(got[0]!.body, got[0]!.headers) as { id: string; type: string };
    expect(verified).toMatchObject({ id: res.body.id, type: "entitlements.balance.threshold" });
    expect(got[0]!.headers["svix-signature"]).toBe(got[0]!.headers["webhook-signature"]);

    // Kept as OpenMeter keeps it: listed and found by id with its annotation, but not resent.
    const kept = await api("GET", `/api/v1/notification/events/${res.body.id}`);
    expect(kept.status, kept.text).toBe(200);
    expect(kept.body).toMatchObject({ id: res.body.id, type: "entitlements.balance.threshold", rule: { id: rule.id }, annotations: { "notification.rule.test": true }, payload: res.body.payload });
    expect(kept.body.deliveryStatus[0]).toMatchObject({ state: "SUCCESS", channel: { id: ch.id } });
    const listed = await api("GET", `/api/v1/notification/events?rule=${rule.id}`);
    expect(listed.body.items.map((e: { id: string }) => e.id)).toEqual([res.body.id]);
    expectProblem(await api("POST", `/api/v1/notification/events/${res.body.id}/resend`, { body: {} }), 400, "bad_request");
  });
});
