#!/usr/bin/env node
// `npm run bench`: the performance figures of issue 8, for each way of running edgemeter locally.
//
//   npm run bench                              every scenario, ~4 minutes per runtime
//   npm run bench -- --quick                   a smoke test of the harness on `npm start` (< 1 minute;
//                                              figures not meaningful; add --runtime both for serve too)
//   npm run bench -- --runtime dev|serve|both  default: both when scripts/serve.mjs exists, else dev
//
// For each runtime it starts the gateway the way users run it (test/e2e/harness.mjs: `npm start` =
// wrangler dev, or `npm run serve` = the production bundle on workerd), on a free port with fresh
// state in a temp folder, ADMIN_API_KEY from the environment (else a random one) and BENCH_PARSE_ONLY
// on (the parse-only ceiling route) and the per-key rate limit off. Load comes from bench/load.mjs in a separate process; webhooks
// go to a receiver in this process (bench/receiver.mjs). Scenarios: bench/scenarios.mjs and
// bench/delivery.mjs; table, targets and cost model: bench/report.mjs. Figures are printed and
// written to bench/results/<timestamp>.json (gitignored).
//
// Exit code: 0 when every scenario ran (a MISSed target is a finding, not a failure), 1 otherwise.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway } from "../test/e2e/harness.mjs";
import { load1, round, startLoad } from "./lib.mjs";
import { startReceiver } from "./receiver.mjs";
import { costModel, formatTable, PRICES, tableRows, targets } from "./report.mjs";
import { apiOf, plan, runAll } from "./scenarios.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HAS_SERVE = existsSync(path.join(ROOT, "scripts", "serve.mjs"));

function parseArgs(argv) {
  const out = { quick: false, runtime: undefined };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    if (flag === "--quick") out.quick = true;
    else if (flag === "--runtime") out.runtime = inline ?? argv[++i];
    else if (flag === "--help" || flag === "-h") {
      console.log("usage: npm run bench -- [--quick] [--runtime dev|serve|both]");
      process.exit(0);
    } else throw new Error(`unknown argument ${argv[i]} (try --help)`);
  }
  // The quick smoke test keeps to its minute with one runtime: the one users start (`npm start`).
  out.runtime ??= out.quick || !HAS_SERVE ? "dev" : "both";
  if (!["dev", "serve", "both"].includes(out.runtime)) throw new Error(`--runtime must be dev, serve or both, not ${out.runtime}`);
  if (out.runtime !== "dev" && !HAS_SERVE) throw new Error("--runtime serve needs scripts/serve.mjs");
  out.runtimes = out.runtime === "both" ? ["dev", "serve"] : [out.runtime];
  return out;
}

/** Progress on one rewritten line in a terminal; in a log (CI), a line per step and every 5 s at most. */
function progressPrinter() {
  let lastLabel = "";
  let lastAt = 0;
  return (runtime, message) => {
    if (process.stderr.isTTY) {
      process.stderr.write(`\r\x1b[K[${runtime}] ${message}`);
      return;
    }
    const label = message.split(":")[0];
    if (label !== lastLabel || Date.now() - lastAt > 5000) {
      process.stderr.write(`[${runtime}] ${message}\n`);
      lastLabel = label;
      lastAt = Date.now();
    }
  };
}

/** The JSON written per runtime: one key per scenario of issue 8 (the smoke test checks them all). */
function scenariosOf(f) {
  return {
    "1_ingest": { ...f.runs.ingest, randomUuidIds: f.runs.randomIds },
    "2_duplicates": f.runs.duplicates,
    "3_subjects": f.runs.subjects,
    "4_latency": f.latency,
    "5_webhook": f.webhook,
    "6_snapshot_lag": f.snapshots,
    "7_storage": { bytesPerRetainedEvent: f.storage.bytesPerRetainedEvent, marginalBytesPerEvent: f.storage.marginalBytesPerEvent, retained: f.storage.retained, perSubject: f.storage.perSubject },
    "8_ceiling": { ...f.runs.ceiling, ingestFraction: round(f.runs.ingest[1000].eventsPerSecond / f.runs.ceiling.eventsPerSecond, 3) },
    "9_cost": { model: f.cost, underLoad: f.runs.ingest[1000].cost, probe: f.storage.probe, d1: f.snapshots.d1 },
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const p = plan(opts.quick);
  const snapshotInterval = opts.quick ? 2 : 30;
  const configCacheSeconds = opts.quick ? 1 : 5;
  const env = {
    BENCH_PARSE_ONLY: "true",
    LOG_SNAPSHOT_FLUSHES: "true", // scenario 6 reads the flush lines
    // One admin key sends all the load: the per-key rate limit (src/http/auth.ts) would cap the bench.
    RATE_LIMIT_ENABLED: "false",
    // Quick mode shortens both so that it fits in a minute; the full run keeps the defaults.
    ...(opts.quick ? { SNAPSHOT_INTERVAL_SECONDS: String(snapshotInterval), CONFIG_CACHE_SECONDS: String(configCacheSeconds) } : {}),
  };
  const started = Date.now();
  const progress = progressPrinter();
  const report = {
    when: new Date().toISOString(),
    command: `npm run bench --${opts.quick ? " --quick" : ""} --runtime ${opts.runtime}`,
    quick: opts.quick,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: round(totalmem() / 2 ** 30, 1), node: process.version, loadAverageAtStart: load1() },
    settings: { snapshotIntervalSeconds: snapshotInterval, configCacheSeconds, connections: 16, ...p },
    prices: PRICES,
    runtimes: {},
  };

  progress("bench", `starting ${opts.runtimes.join(" and ")} (a build each, in parallel)`);
  const receiver = await startReceiver();
  const load = startLoad(progress);
  const gateways = await Promise.allSettled(opts.runtimes.map((runtime) => startGateway({ runtime, env, adminKey: process.env.ADMIN_API_KEY || undefined })));
  const figures = {};
  try {
    for (const [i, runtime] of opts.runtimes.entries()) {
      const g = gateways[i];
      if (g.status === "rejected") {
        figures[runtime] = { error: String(g.reason?.message ?? g.reason) };
        continue;
      }
      const gw = g.value;
      const ctx = {
        gw,
        runtime,
        plan: p,
        quick: opts.quick,
        tag: `b${Date.now().toString(36)}`,
        api: apiOf(gw),
        receiver,
        snapshotInterval,
        configCacheSeconds,
        loadAverage: load1,
        progress: (m) => progress(runtime, m),
        load: (label, cmd) => load.run(runtime, label, cmd),
      };
      try {
        const f = await runAll(ctx);
        f.cost = costModel(f);
        f.targets = targets(f);
        figures[runtime] = f;
      } catch (e) {
        figures[runtime] = { error: String(e?.stack ?? e) };
        console.error(`\n[${runtime}] failed: ${e?.stack ?? e}\n--- gateway output (last lines) ---\n${gw.output().split("\n").slice(-30).join("\n")}`);
      }
      // Each runtime is stopped before the next is measured: an idle gateway costs little, a busy one a lot.
      await gw.cleanup().catch(() => {});
    }
  } finally {
    for (const g of gateways) if (g.status === "fulfilled") await g.value.cleanup().catch(() => {});
    load.stop();
    await receiver.close();
  }
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");

  for (const [runtime, f] of Object.entries(figures)) {
    report.runtimes[runtime] = f.error ? { error: f.error } : { seconds: f.seconds, loadAverage: f.loadAverage, settledSeconds: f.settledSeconds, targets: f.targets, scenarios: scenariosOf(f) };
  }
  report.seconds = round((Date.now() - started) / 1000, 1);
  report.machine.loadAverageAtEnd = load1();

  console.log(`\nedgemeter bench${opts.quick ? " (quick: a smoke test, figures not meaningful)" : ""} · ${report.machine.cpus} cores · load average ${report.machine.loadAverageAtStart} → ${report.machine.loadAverageAtEnd} · ${report.seconds} s\n`);
  console.log(formatTable(tableRows(figures)));
  for (const [runtime, f] of Object.entries(figures)) {
    if (f.error) continue;
    console.log(`\ntargets (${runtime === "serve" ? "npm run serve: the runtime the targets apply to" : "npm start (wrangler dev)"})`);
    for (const t of f.targets) console.log(`  ${t.pass ? "PASS" : "MISS"}  ${t.target}: ${t.measured}`);
  }
  const dir = path.join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${report.when.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + "\n");
  console.log(`\nsaved ${path.relative(ROOT, file)}`);
  const failed = Object.entries(figures).filter(([, f]) => f.error);
  if (failed.length > 0) {
    for (const [runtime, f] of failed) console.error(`[${runtime}] ${f.error}`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e?.stack ?? e);
  process.exit(1);
});
