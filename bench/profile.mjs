#!/usr/bin/env node
// CPU profile of the gateway under ingest load: where the runtime's time goes, by function. The tool
// the hot-path work of docs/performance.md was done with.
//
//   npm run bench:profile -- [--batch 1000] [--subjects 1] [--ids ordered|uuid] [--dup 0.2]
//                            [--seconds 8] [--path /api/v1/events|/bench/parse-only] [--top 25]
//   npm run bench:profile -- --latency "check (decide" [--rounds 3000]
//
// Starts `npm run serve` (the production bundle on workerd) with EDGEMETER_INSPECTOR_PORT set, sends
// the bench workload from bench/load.mjs in its own process (2 s to warm up, then the measured run),
// and records a V8 CPU profile of the Worker's isolate — Worker and Durable Objects alike, since
// locally they share it — over the measured run through the DevTools protocol. Prints events/s and
// the functions with the most self and inclusive time; "exec" is SQLite (ctx.storage.sql.exec),
// "(anon)" frames without a file are native work (RPC serialisation, I/O). Saves the profile as
// bench/results/profile-<time>.cpuprofile (open it in Chrome DevTools → Performance).
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort, startGateway } from "../test/e2e/harness.mjs";
import { startReceiver } from "./receiver.mjs";
import { ingestRun, latency, setup, toolContext } from "./scenarios.mjs";
import { load1, startLoad } from "./lib.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    batch: { type: "string", default: "1000" },
    subjects: { type: "string", default: "1" },
    ids: { type: "string", default: "ordered" },
    dup: { type: "string", default: "0" },
    seconds: { type: "string", default: "8" },
    path: { type: "string", default: "/api/v1/events" },
    top: { type: "string", default: "25" },
    // Scenario 4's sequential requests instead of ingest load: the kinds whose name contains this.
    latency: { type: "string" },
    rounds: { type: "string", default: "3000" },
  },
});
if (!["ordered", "uuid"].includes(args.ids)) throw new Error("--ids must be ordered or uuid");

/** One DevTools protocol session on a WebSocket: send(method, params) → result. */
async function devtools(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot connect to the inspector at ${url}`)), { once: true });
  });
  let seq = 0;
  const waiting = new Map();
  ws.addEventListener("message", (m) => {
    const msg = JSON.parse(String(m.data));
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${msg.error.message} (${msg.error.code})`));
    else w.resolve(msg.result);
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = ++seq;
        waiting.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** Self and inclusive sample shares per function (name, file, line), from a V8 CPU profile. */
function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n) => `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url ? `${path.basename(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : "(native)"}`;
  const counts = new Map();
  for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  const self = new Map();
  const inclusive = new Map();
  for (const [id, c] of counts) {
    const own = label(byId.get(id));
    self.set(own, (self.get(own) ?? 0) + c);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur));
      if (seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + c);
    }
  }
  const total = profile.samples.length;
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, c]) => ({ name, share: c / total }));
  return { samples: total, self: (n) => top(self, n), inclusive: (n) => top(inclusive, n) };
}

async function main() {
  const inspectorPort = await freePort();
  const receiver = await startReceiver();
  const gw = await startGateway({
    runtime: "serve",
    env: { EDGEMETER_INSPECTOR_PORT: String(inspectorPort), BENCH_PARSE_ONLY: "true", RATE_LIMIT_ENABLED: "false" },
  });
  const loader = startLoad((_, message) => process.stderr.write(`\r\x1b[K${message}`));
  const load = (label, cmd) => loader.run("serve", label, cmd);
  let session;
  try {
    const ctx = toolContext({ gw, receiver, load, plan: { seconds: Number(args.seconds), warmup: 2 }, tag: "p" });
    process.stderr.write("setting up meters, rule and entitlements…\n");
    await setup(ctx);
    const run = { batch: Number(args.batch), subjects: Number(args.subjects), ids: args.ids, dupRate: Number(args.dup), path: args.path, prefix: `${ctx.tag}-load` };
    // The same subjects warmed up first (each Durable Object started, its pages cached), then measured alone.
    await ingestRun(ctx, "warm-up", { ...run, seconds: 2, warmup: 0 });
    session = await devtools(`ws://127.0.0.1:${inspectorPort}/core:user:edgemeter`);
    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: 200 });
    await session.send("Profiler.start");
    const result = args.latency === undefined ? await ingestRun(ctx, "profiled", { ...run, warmup: 0, skipEntitle: true }) : await latencyRun(ctx);
    const { profile } = await session.send("Profiler.stop");

    const dir = path.join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `profile-${new Date().toISOString().replace(/[:.]/g, "-")}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    const s = summarise(profile);
    const n = Number(args.top);
    const pct = (x) => `${(100 * x).toFixed(1).padStart(5)}%`;
    if (result.results) for (const [k, r] of Object.entries(result.results)) console.log(`\n${k}: p50 ${r.p50} ms · p99 ${r.p99} ms (${r.n} sequential requests)`);
    else console.log(
      `\n${args.path} · ${run.batch} ev/req · ${run.subjects} subject(s) · ids ${run.ids} · ${run.dupRate * 100}% re-sent · ` +
        `${Math.round(result.eventsPerSecond).toLocaleString("en-US")} ev/s under the profiler · load average ${load1()} · ${s.samples} samples\n`,
    );
    console.log("self time");
    for (const r of s.self(n)) console.log(`  ${pct(r.share)}  ${r.name}`);
    console.log("\ninclusive time");
    for (const r of s.inclusive(n)) console.log(`  ${pct(r.share)}  ${r.name}`);
    console.log(`\nsaved ${path.relative(ROOT, file)}`);
  } finally {
    session?.close();
    loader.stop();
    await gw.cleanup();
    await receiver.close();
  }
}

function latencyRun(ctx) {
  ctx.plan = { ...ctx.plan, latencyRounds: Number(args.rounds), latencyWarmup: 50 };
  return latency(ctx, { only: args.latency });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
