import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { api, customerStub, uid } from "./api";
import type { Setup } from "./entitlements";

export const SECRET = "whsec_" + btoa("0123456789abcdef0123456789abcdef");

export interface Received {
  at: number;
  headers: Record<string, string>;
  body: string;
  answered: number;
}

/** What the test receiver (test/receiver.ts) got for `name`. */
export async function received(name: string): Promise<Received[]> {
  return (await (await env.RECEIVER.fetch(`http://receiver/deliveries?name=${encodeURIComponent(name)}`)).json()) as Received[];
}

/** Polls until `fn` holds: alarms set to "now" fire by themselves, a little later. */
export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > until) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A webhook channel to the test receiver, and a threshold rule on the setup's feature. */
export async function notifyOn(s: Setup, thresholds: { type: string; value: number }[], query = ""): Promise<{ name: string; channel: any; rule: any }> {
  const name = uid("hook");
  const channel = await api("POST", "/api/v1/notification/channels", {
    body: { type: "WEBHOOK", name, url: `https://receiver.test/hooks/${name}${query}`, signingSecret: SECRET },
  });
  expect(channel.status, channel.text).toBe(201);
  const rule = await api("POST", "/api/v1/notification/rules", {
    body: { type: "entitlements.balance.threshold", name, channels: [channel.body.id], thresholds, features: [s.feature] },
  });
  expect(rule.status, rule.text).toBe(201);
  return { name, channel: channel.body, rule: rule.body };
}

export interface OutboxRow {
  id: string;
  type: string;
  channel_id: string;
  state: string;
  attempts: number;
  next_attempt_at: number | null;
}

/** The subject's outbox, read straight from its Durable Object's storage. */
export async function outbox(subject: string): Promise<OutboxRow[]> {
  return runInDurableObject(customerStub(subject), (_, state) =>
    state.storage.sql
      .exec<Record<string, SqlStorageValue>>(
        "SELECT n.id, n.type, d.channel_id, d.state, d.attempts, d.next_attempt_at FROM notifications n JOIN deliveries d ON d.notification_id = n.id ORDER BY n.created_at",
      )
      .toArray() as unknown as OutboxRow[],
  );
}

/** Makes every pending retry due now (instead of waiting out the backoff) and runs the alarm. */
export async function retryNow(subject: string): Promise<void> {
  const stub = customerStub(subject);
  await runInDurableObject(stub, async (_, state) => {
    state.storage.sql.exec("UPDATE deliveries SET next_attempt_at = 0 WHERE state IN ('PENDING','RESENDING')");
    state.storage.sql.exec("UPDATE meta SET value = 0 WHERE key = 'job:deliver'");
    await state.storage.setAlarm(Date.now());
  });
}
