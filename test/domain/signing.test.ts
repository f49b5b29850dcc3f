import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import {
  generateSigningSecret,
  isValidSigningSecret,
  signingKeyBytes,
  signWebhook,
  webhookHeaders,
} from "../../src/domain/signing";

const nowSec = () => Math.floor(Date.now() / 1000);
const body = JSON.stringify({ id: "01J2KNP1YTXQRXHTDJ4KPR7PZ0", type: "entitlements.balance.threshold", data: { value: { balance: 10 } } });

describe("signing secrets", () => {
  it("generates whsec_ + base64 of 32 random bytes, valid for OpenMeter's pattern", () => {
    const a = generateSigningSecret();
    const b = generateSigningSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(isValidSigningSecret(a)).toBe(true);
    expect(signingKeyBytes(a)).toHaveLength(32);
    expect(a).not.toBe(b);
  });

  it("accepts OpenMeter's example, with and without the prefix", () => {
    expect(isValidSigningSecret("whsec_S6g2HLnTwd9AhHwUIMFggVS9OfoPafN8")).toBe(true);
    expect(isValidSigningSecret("S6g2HLnTwd9AhHwUIMFggVS9OfoPafN8")).toBe(true);
    expect(signingKeyBytes("S6g2HLnTwd9AhHwUIMFggVS9OfoPafN8")).toEqual(signingKeyBytes("whsec_S6g2HLnTwd9AhHwUIMFggVS9OfoPafN8"));
  });

  it("rejects what OpenMeter rejects, and base64 no receiver could decode", () => {
    expect(isValidSigningSecret("whsec_tooShort123")).toBe(false); // < 32 characters
    expect(isValidSigningSecret(`whsec_${"A".repeat(101)}`)).toBe(false); // > 100
    expect(isValidSigningSecret("whsec_S6g2HLnTwd9AhHwUIMFggVS9OfoPafN-")).toBe(false); // '-' not in the alphabet
    expect(isValidSigningSecret("whsec_S6g2HLnTwd9AhHw=IMFggVS9OfoPafN8")).toBe(false); // '=' inside
    expect(isValidSigningSecret(`whsec_${"A".repeat(33)}`)).toBe(false); // 33 chars: not base64
    expect(isValidSigningSecret(`whsec_${"A".repeat(34)}`)).toBe(true); // unpadded is fine
    expect(() => signingKeyBytes("nope")).toThrow(TypeError);
  });
});

describe("signWebhook", () => {
  it("reproduces the published Svix/Standard Webhooks test vector", async () => {
    const sig = await signWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}');
    expect(sig).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  });

  it("matches the standardwebhooks library's own signer", async () => {
    const secret = generateSigningSecret();
    const ts = 1_700_000_000;
    const ours = await signWebhook(secret, "01JABCDEF0123456789ABCDEFG", ts, body);
    expect(ours).toBe(new Webhook(secret).sign("01JABCDEF0123456789ABCDEFG", new Date(ts * 1000), body));
  });

  it("refuses message ids that would make the signed content ambiguous", async () => {
    const secret = generateSigningSecret();
    await expect(signWebhook(secret, "msg.1", nowSec(), body)).rejects.toThrow(TypeError);
    await expect(signWebhook(secret, "", nowSec(), body)).rejects.toThrow(TypeError);
    await expect(signWebhook(secret, "msg_1", 1.5, body)).rejects.toThrow(TypeError);
  });
});

describe("webhookHeaders", () => {
  it("verifies with the standardwebhooks package, and tampering fails", async () => {
    const secret = generateSigningSecret();
    const headers = await webhookHeaders(secret, "01JABCDEF0123456789ABCDEFG", nowSec(), body);
    const wh = new Webhook(secret);
    expect(wh.verify(body, { ...headers })).toEqual(JSON.parse(body));

    expect(() => wh.verify(body.replace('"balance":10', '"balance":11'), { ...headers })).toThrow(/signature/i);
    expect(() => wh.verify(body, { ...headers, "webhook-id": "01JABCDEF0123456789ABCDEFH" })).toThrow(/signature/i);
    expect(() => new Webhook(generateSigningSecret()).verify(body, { ...headers })).toThrow(/signature/i);
  });

  it("sends the same values under the svix- names (receivers using Svix verify them)", async () => {
    const secret = generateSigningSecret();
    const ts = nowSec();
    const h = await webhookHeaders(secret, "msg_1", ts, body);
    expect(h["webhook-timestamp"]).toBe(String(ts));
    expect([h["svix-id"], h["svix-timestamp"], h["svix-signature"]]).toEqual([h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]]);
    // The svix- set alone is also a valid Standard Webhooks message once renamed.
    const renamed = { "webhook-id": h["svix-id"], "webhook-timestamp": h["svix-timestamp"], "webhook-signature": h["svix-signature"] };
    expect(new Webhook(secret).verify(body, renamed)).toEqual(JSON.parse(body));
  });

  it("signs with every secret during a rotation, space-separated", async () => {
    const oldSecret = generateSigningSecret();
    const newSecret = generateSigningSecret();
    const h = await webhookHeaders([newSecret, oldSecret], "msg_2", nowSec(), body);
    expect(h["webhook-signature"].split(" ")).toHaveLength(2);
    expect(new Webhook(oldSecret).verify(body, { ...h })).toEqual(JSON.parse(body));
    expect(new Webhook(newSecret).verify(body, { ...h })).toEqual(JSON.parse(body));
    await expect(webhookHeaders([], "msg_3", nowSec(), body)).rejects.toThrow(TypeError);
  });
});
