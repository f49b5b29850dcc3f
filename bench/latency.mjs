#!/usr/bin/env node
// Latency of `POST /api/v1/check` and `GET …/value` next to a no-op Durable Object round trip
// (`GET /healthz/do`) and the Worker alone (`GET /healthz`), measured in the same run against a local
// gateway (scripts/start.mjs → wrangler dev → workerd), over HTTP with keep-alive.
//
//   node bench/latency.mjs [--n 500] [--warmup 50] [--base-url http://127.0.0.1:8787 --admin-key …]
//
// Without --base-url a fresh gateway is started on a free port with a temp state dir (test/e2e/harness.mjs)
// and stopped at the end. Requests are sequential and interleaved round-robin (healthz, ping, check,
// value, …), so every kind sees the same conditions. Each check carries a new event and is allowed
// (the entitlement's grant is effectively unlimited), so it measures the full decide-and-record path.
// Figures are printed and saved to bench/results/latency-<time>.json.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway } from "../test/e2e/harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function args(argv) {
  const out = { n: 500, warmup: 50, baseUrl: undefined, adminKey: undefined };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    if (argv[i] === "--n") out.n = Number(v());
    else if (argv[i] === "--warmup") out.warmup = Number(v());
    else if (argv[i] === "--base-url") out.baseUrl = v();
    else if (argv[i] === "--admin-key") out.adminKey = v();
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!(out.n >= 1)) throw new Error("--n must be a positive number");
  return out;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

function summary(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const r = (x) => Math.round(x * 100) / 100;
  return { n: s.length, p50: r(percentile(s, 50)), p90: r(percentile(s, 90)), p99: r(percentile(s, 99)), mean: r(mean), max: r(s[s.length - 1]) };
}

async function main() {
  const opts = args(process.argv.slice(2));
  const gw = opts.baseUrl ? null : await startGateway();
  const baseUrl = opts.baseUrl ?? gw.baseUrl;
  const adminKey = opts.adminKey ?? gw.adminKey;
  const auth = { authorization: `Bearer ${adminKey}` };

  async function call(method, p, body) {
    const res = await fetch(baseUrl + p, {
      method,
      headers: { ...auth, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p} → ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  try {
    const tag = Date.now().toString(36);
    const meter = `bench_calls_${tag}`;
    const subject = `bench-${tag}`;
    await call("POST", "/api/v1/meters", { slug: meter, eventType: `bench_call_${tag}`, aggregation: "COUNT" });
    await call("POST", "/api/v1/features", { key: meter, name: "bench", meterSlug: meter });
    await call("POST", `/api/v1/subjects/${subject}/entitlements`, { type: "metered", featureKey: meter, issueAfterReset: 1e12, usagePeriod: { interval: "MONTH" } });

    let seq = 0;
    const kinds = {
      "GET /healthz (Worker only)": () => fetch(`${baseUrl}/healthz`).then((r) => r.text()),
      "GET /healthz/do (no-op DO RPC)": () => fetch(`${baseUrl}/healthz/do`).then((r) => r.text()),
      "POST /api/v1/check (+event)": () =>
        call("POST", "/api/v1/check", { subject, feature: meter, event: { specversion: "1.0", id: `b-${tag}-${seq++}`, source: "bench", type: `bench_call_${tag}`, subject } }).then((r) => {
          if (!r.allowed) throw new Error("check refused");
        }),
      "GET …/entitlements/{feature}/value": () => call("GET", `/api/v1/subjects/${subject}/entitlements/${meter}/value`),
      // Reference: the ordinary durable write of one event (what an allowed check adds to the decision).
      "POST /api/v1/events (1 event)": () =>
        call("POST", "/api/v1/events", { specversion: "1.0", id: `i-${tag}-${seq++}`, source: "bench", type: `bench_call_${tag}`, subject }),
    };
    const names = Object.keys(kinds);
    const samples = Object.fromEntries(names.map((k) => [k, []]));
    for (let i = 0; i < opts.warmup; i++) for (const k of names) await kinds[k]();
    for (let i = 0; i < opts.n; i++) {
      for (const k of names) {
        const t0 = performance.now();
        await kinds[k]();
        samples[k].push(performance.now() - t0);
      }
    }
    const usage = (await call("GET", `/api/v1/subjects/${subject}/entitlements/${meter}/value`)).usage;
    const expected = 2 * (opts.warmup + opts.n); // checks and single-event ingests both count
    if (usage !== expected) throw new Error(`usage ${usage} after ${expected} checks`);

    const results = Object.fromEntries(names.map((k) => [k, summary(samples[k])]));
    const report = {
      when: new Date().toISOString(),
      node: process.version,
      baseUrl,
      sequential: true,
      warmup: opts.warmup,
      results,
    };
    console.log(`\nlatency, ms (client-side, ${opts.n} sequential requests each, interleaved; ${opts.warmup} warm-up rounds)\n`);
    console.log(["request".padEnd(38), "p50", "p90", "p99", "mean", "max"].map((x, i) => (i ? String(x).padStart(8) : x)).join(""));
    for (const [k, r] of Object.entries(results)) console.log([k.padEnd(38), r.p50, r.p90, r.p99, r.mean, r.max].map((x, i) => (i ? String(x).padStart(8) : x)).join(""));
    const dir = path.join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `latency-${report.when.replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
    console.log(`\nsaved ${path.relative(ROOT, file)}`);
  } finally {
    await gw?.cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
