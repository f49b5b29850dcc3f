// Threshold webhooks during the chaos run: a usage_value rule on the COUNT feature (daily periods,
// so usage only grows), a receiver on 127.0.0.1 that verifies every signature, and the checks:
// one notification per (subject, period, threshold) whatever kills and retries did; the highest
// threshold each subject's final usage reached was notified (the batch that first reached it fires
// it; lower ones may be skipped when one batch passes several, as documented); none above it; every
// attempt of a notification under its one webhook-id.
import { startReceiver } from "../../test/e2e/webhook-receiver.mjs";

export const THRESHOLDS = [10, 25, 50, 100, 200, 400, 800];

export async function setupWebhooks(post, feature) {
  const rx = await startReceiver();
  const channel = await post("/api/v1/notification/channels", { type: "WEBHOOK", name: "chaos", url: rx.url("chaos"), signingSecret: rx.secret });
  const rule = await post("/api/v1/notification/rules", {
    type: "entitlements.balance.threshold",
    name: "chaos",
    channels: [channel.id],
    thresholds: THRESHOLDS.map((value) => ({ type: "usage_value", value })),
    features: [feature],
  });
  return { rx, rule };
}

/**
 * usageBySubject: subject → { usage, periodFrom }, the oracle's usage of the feature in the current
 * period (already compared with the gateway's). Notifications of an earlier period (a run across UTC
 * midnight) are checked for duplicates only.
 */
export async function verifyWebhooks({ rx }, usageBySubject, timeoutMs) {
  const highest = (usage) => THRESHOLDS.filter((t) => t <= usage).at(-1);
  const current = (d, s) => d.payload?.data?.subject?.key === s && d.payload?.data?.entitlement?.currentUsagePeriod?.from === usageBySubject.get(s).periodFrom;
  const keyOf = (d) => `${d.payload?.data?.subject?.key} · ${d.payload?.data?.entitlement?.currentUsagePeriod?.from} · ${d.payload?.data?.threshold?.value}`;
  const expected = [...usageBySubject].filter(([, u]) => highest(u.usage) !== undefined);
  const arrived = () => expected.every(([s, u]) => rx.deliveries.some((d) => current(d, s) && d.payload?.data?.threshold?.value === highest(u.usage)));
  const started = Date.now();
  while (!arrived() && Date.now() - started < timeoutMs) await new Promise((r) => setTimeout(r, 250));
  await new Promise((r) => setTimeout(r, 1_000)); // a duplicate would arrive by now

  const differences = [];
  const invalid = rx.deliveries.filter((d) => !d.valid);
  if (invalid.length) differences.push(`webhooks: ${invalid.length} requests with an invalid signature`);
  const idsByKey = new Map();
  const keyById = new Map();
  for (const d of rx.deliveries) {
    const key = keyOf(d);
    if (keyById.has(d.id) && keyById.get(d.id) !== key) differences.push(`webhooks: webhook-id ${d.id} carried ${keyById.get(d.id)} and ${key}`);
    keyById.set(d.id, key);
    if (d.payload?.id !== d.id) differences.push(`webhooks: payload id ${d.payload?.id} ≠ webhook-id ${d.id}`);
    idsByKey.set(key, (idsByKey.get(key) ?? new Set()).add(d.id));
  }
  for (const [key, ids] of idsByKey) if (ids.size > 1) differences.push(`webhooks: ${key} notified ${ids.size} times (${[...ids].join(", ")})`);
  for (const [subject, { usage }] of usageBySubject) {
    const got = rx.deliveries.filter((d) => current(d, subject)).map((d) => d.payload.data.threshold.value);
    const top = highest(usage);
    if (top !== undefined && !got.includes(top)) differences.push(`webhooks: ${subject} reached ${top} (usage ${usage}) but was not notified`);
    for (const t of new Set(got)) if (t > usage) differences.push(`webhooks: ${subject} notified ${t} with usage ${usage}`);
  }
  return {
    compared: usageBySubject.size,
    requests: rx.deliveries.length,
    notifications: keyById.size,
    repeatedDeliveries: rx.deliveries.length - keyById.size,
    waitedMs: Date.now() - started,
    differences,
  };
}
