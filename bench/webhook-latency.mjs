#!/usr/bin/env node
// Threshold → webhook latency: the time from the 2xx of the ingest request that crossed a threshold
// to the signed webhook arriving at a local receiver (headers in), both on this machine's clock.
// Each of N subjects (default 200) has an entitlement and a rule "usage reaches 1"; one event per
// subject crosses it once. Requests go one at a time (or --parallel K at once), so the figure is
// latency, not throughput under load. Prints p50/p90/p99 and saves bench/results/webhook-latency-<time>.json.
// A negative sample is real: the Durable Object's alarm sends the webhook as soon as the crossing is
// committed, while the 2xx may still be on its way back through wrangler dev's proxy.
//
//   node bench/webhook-latency.mjs [--subjects 200] [--parallel 1] [--runtime dev|serve]
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/harness.mjs";
import { startReceiver } from "../test/e2e/webhook-receiver.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    subjects: { type: "string", default: "200" },
    parallel: { type: "string", default: "1" },
    runtime: { type: "string", default: "dev" },
  },
});
const N = Number(args.subjects);
const PARALLEL = Math.max(1, Number(args.parallel));
const now = () => performance.timeOrigin + performance.now();

const rx = await startReceiver();
const gw = await startGateway({ runtime: args.runtime, env: { CONFIG_CACHE_SECONDS: "0" } });
try {
  const api = async (method, p, body, expected) => {
    const res = await gw.fetch(p, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (expected && res.status !== expected) throw new Error(`${method} ${p} → ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  };
  await api("POST", "/api/v1/meters", { slug: "lat_count", eventType: "lat", aggregation: "COUNT" }, 201);
  await api("POST", "/api/v1/features", { key: "lat_requests", name: "lat_requests", meterSlug: "lat_count" }, 201);
  const channel = await api("POST", "/api/v1/notification/channels", { type: "WEBHOOK", name: "latency", url: rx.url("latency"), signingSecret: rx.secret }, 201);
  await api(
    "POST",
    "/api/v1/notification/rules",
    { type: "entitlements.balance.threshold", name: "latency", channels: [channel.id], thresholds: [{ type: "usage_value", value: 1 }], features: ["lat_requests"] },
    201,
  );
  const subjects = Array.from({ length: N }, (_, i) => `lat-${String(i).padStart(4, "0")}`);
  for (const s of subjects) {
    await api("POST", `/api/v1/subjects/${s}/entitlements`, { type: "metered", featureKey: "lat_requests", usagePeriod: { interval: "MONTH" }, issueAfterReset: 1_000 }, 201);
  }
  // Warm-up: one crossing on a subject outside the sample (first-use costs of the Worker and the path).
  await api("POST", "/api/v1/subjects/lat-warmup/entitlements", { type: "metered", featureKey: "lat_requests", usagePeriod: { interval: "MONTH" }, issueAfterReset: 1_000 }, 201);
  await crossOnce("lat-warmup");

  const samples = [];
  const ingestMs = [];
  let missing = 0;
  const load = [loadavg()[0]];
  const started = now();
  for (let i = 0; i < subjects.length; i += PARALLEL) {
    await Promise.all(
      subjects.slice(i, i + PARALLEL).map(async (s) => {
        const r = await crossOnce(s);
        if (r.latency === null) missing++;
        else samples.push(r.latency);
        ingestMs.push(r.ingestMs);
      }),
    );
  }
  const elapsed = now() - started;
  load.push(loadavg()[0]);
  await new Promise((r) => setTimeout(r, 1_000)); // a duplicate would have arrived by now
  const received = rx.of("latency").filter((d) => d.payload?.data?.subject?.key !== "lat-warmup");
  const ids = new Set(received.map((d) => d.id));
  const result = {
    runtime: args.runtime,
    subjects: N,
    parallel: PARALLEL,
    crossings: samples.length,
    missing,
    webhooksReceived: received.length,
    distinctWebhookIds: ids.size,
    invalidSignatures: received.filter((d) => !d.valid).length,
    latencyMs: summary(samples),
    ingestRoundTripMs: summary(ingestMs),
    elapsedS: round(elapsed / 1000),
    loadAverage1m: load,
    at: new Date().toISOString(),
  };
  console.log(
    `webhook latency (${args.runtime}, ${N} crossings, ${PARALLEL} at a time): p50 ${result.latencyMs.p50} ms · p90 ${result.latencyMs.p90} ms · p99 ${result.latencyMs.p99} ms ` +
      `(min ${result.latencyMs.min}, max ${result.latencyMs.max}); ingest round trip p50 ${result.ingestRoundTripMs.p50} ms; ` +
      `${result.webhooksReceived} webhooks, ${result.distinctWebhookIds} distinct ids, ${result.invalidSignatures} invalid signatures, ${missing} missing; load ${load.map((l) => l.toFixed(1)).join(" → ")}`,
  );
  const out = path.join(ROOT, "bench", "results", `webhook-latency-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2));
  console.log(`saved ${path.relative(ROOT, out)}`);
  if (missing || result.invalidSignatures || ids.size !== received.length || received.length !== N) process.exitCode = 1;
} finally {
  await gw.cleanup();
  await rx.close();
}

/** One event that takes the subject's usage from 0 to 1; the latency is the webhook's arrival − the 2xx. */
async function crossOnce(subject) {
  const sent = now();
  const res = await gw.fetch("/api/v1/events", {
    method: "POST",
    headers: { "content-type": "application/cloudevents+json" },
    body: JSON.stringify({ specversion: "1.0", id: randomUUID(), source: "bench", type: "lat", subject }),
  });
  const acked = now(); // fetch resolves when the status line and headers are in
  await res.arrayBuffer();
  if (res.status !== 202) throw new Error(`ingest for ${subject} → ${res.status}`);
  const d = await rx.waitFor((x) => x.payload?.data?.subject?.key === subject, 30_000);
  return { latency: d ? round(d.at - acked) : null, ingestMs: round(acked - sent) };
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : null);
  return { n: s.length, min: s[0] ?? null, p50: q(50), p90: q(90), p99: q(99), max: s.at(-1) ?? null, mean: s.length ? round(s.reduce((a, b) => a + b, 0) / s.length) : null };
}

function round(x) {
  return Math.round(x * 10) / 10;
}
