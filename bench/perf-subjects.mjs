#!/usr/bin/env node
// Scenario 3 (1 subject vs N subjects, 100 events per request) under Linux `perf`, which sees
// workerd's native code — SQLite, its write-ahead log, the kernel — where the V8 profile of
// `npm run bench:profile` sees JavaScript only. Each case: a 5 s run to warm its subjects up, then a
// measured run recorded at 999 Hz; prints the runtime's CPU per request by where it went. The
// figures of docs/performance.md (1,000 subjects) come from here.
//
//   npx node bench/perf-subjects.mjs [--subjects 1000] [--seconds 35]
//
// Needs perf with permission to record workerd (root, or kernel.perf_event_paranoid ≤ 1).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { groupStats, startGateway } from "../test/e2e/harness.mjs";
import { startLoad } from "./lib.mjs";
import { startReceiver } from "./receiver.mjs";
import { ingestRun, setup, toolContext } from "./scenarios.mjs";

const { values: args } = parseArgs({ options: { subjects: { type: "string", default: "1000" }, seconds: { type: "string", default: "35" } } });
if (spawnSync("perf", ["--version"]).error) throw new Error("perf is not installed");

// A sample counts in a category when a frame of its stack contains the key (categories may overlap;
// "SQLite statements" leaves the log writes out).
const CATEGORIES = [
  ["write-ahead log writes", (s) => s.has("pagerWalFrames")],
  ["  at commit", (s) => s.has("pagerWalFrames") && s.has("vdbeCommit")],
  ["  page-cache spills mid-statement", (s) => s.has("pagerStress")],
  ["  fsync", (s) => s.has("do_fsync")],
  ["  kernel zeroing new log-file pages", (s) => s.has("walWriteOneFrame") && s.has("__pi_memset")],
  ["SQLite statements (without log writes)", (s) => s.has("sqlite3_step") && !s.has("pagerWalFrames")],
  ["statement preparation", (s) => s.has("workerd::SqliteDatabase::prepareSql")],
  ["alarms (flush jobs)", (s) => s.has("runAlarm")],
];

/** perf script's stacks as sets of frame names containing any category key. */
function stacks(data) {
  const out = spawnSync("perf", ["script", "-i", data, "-F", "ip,sym"], { maxBuffer: 1 << 30, encoding: "utf8" }).stdout;
  const keys = ["pagerWalFrames", "walWriteOneFrame", "__pi_memset", "vdbeCommit", "pagerStress", "do_fsync", "sqlite3_step", "workerd::SqliteDatabase::prepareSql", "runAlarm"];
  const result = [];
  for (const block of out.split("\n\n")) {
    if (!block.trim()) continue;
    result.push(new Set(keys.filter((k) => block.includes(k))));
  }
  return result;
}

const receiver = await startReceiver();
const loader = startLoad(() => {});
const gw = await startGateway({ runtime: "serve", env: { RATE_LIMIT_ENABLED: "false", LOG_SNAPSHOT_FLUSHES: "true" } });
const dir = path.join(tmpdir(), `edgemeter-perf-${process.pid}`);
mkdirSync(dir, { recursive: true });
const results = {};
try {
  const ctx = toolContext({ gw, receiver, load: (label, cmd) => loader.run("serve", label, cmd), plan: { seconds: 5, warmup: 1 }, tag: "pf" });
  await setup(ctx);
  for (const subjects of [1, Number(args.subjects)]) {
    const prefix = `${ctx.tag}-s${subjects}`;
    await ingestRun(ctx, `warm-up ${subjects}`, { batch: 100, subjects, prefix, seconds: 5 });
    const pids = groupStats(gw.pid).filter((f) => f.comm === "workerd").map((f) => f.pid);
    const data = path.join(dir, `s${subjects}.data`);
    const perf = spawn("perf", ["record", "-q", "-F", "999", "-g", "-o", data, "-p", pids.join(",")], { stdio: "ignore" });
    // Warmed up already: no priming reads, so that perf records the ingest requests alone.
    const run = await ingestRun(ctx, `measured ${subjects}`, { batch: 100, subjects, prefix, seconds: Number(args.seconds), warmup: 0, skipEntitle: true, prime: false });
    perf.kill("SIGINT");
    const code = await new Promise((resolve) => perf.once("close", resolve));
    if (!existsSync(data)) throw new Error(`perf record failed (exit ${code}): is perf allowed to record workerd?`);
    // perf ran over the whole run: per request answered in all of it.
    const usPerSample = 1e6 / 999 / run.whole.requests;
    const all = stacks(data);
    const r = { subjects, eventsPerSecond: run.eventsPerSecond, gatewayCpuMsPerRequest: run.gatewayCpuMsPerRequest, storageSyncsPerRequest: run.storageSyncsPerRequest, usPerRequest: { total: Math.round(all.length * usPerSample) } };
    for (const [name, test] of CATEGORIES) r.usPerRequest[name.trim()] = Math.round(all.filter(test).length * usPerSample);
    results[subjects] = r;
    console.log(`${subjects} subject(s): ${run.eventsPerSecond.toLocaleString("en-US")} ev/s · ${run.gatewayCpuMsPerRequest} ms CPU/request · ${run.storageSyncsPerRequest} fsync/request`);
  }
  const [one, many] = Object.values(results);
  console.log(`\nµs of the runtime's CPU per 100-event request (perf samples)\n${"".padEnd(42)}${"1".padStart(8)}${String(many.subjects).padStart(8)}`);
  for (const name of ["total", ...CATEGORIES.map(([n]) => n)]) {
    const k = name.trim();
    console.log(`${name.padEnd(42)}${String(one.usPerRequest[k]).padStart(8)}${String(many.usPerRequest[k]).padStart(8)}`);
  }
  const file = path.join(import.meta.dirname, "results", `perf-subjects-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify({ when: new Date().toISOString(), command: `npx node bench/perf-subjects.mjs --subjects ${args.subjects} --seconds ${args.seconds}`, results }, null, 2));
  console.log(`\nsaved ${path.relative(process.cwd(), file)}`);
} finally {
  await gw.cleanup();
  loader.stop();
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
}
