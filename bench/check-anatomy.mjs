#!/usr/bin/env node
// Where a quota check's latency goes beyond the no-op Worker → Durable Object round trip it is held
// to (issue 8: check p99 within 1.2× of it). Scenario 4's sequential, interleaved requests on a fresh
// `npm run serve` gateway, plus three probes of src/http/debug.ts (on with BENCH_PARSE_ONLY) that
// each do part of a check: authentication alone, authentication and the body gate, and the check's
// RPC to the subject's object without the HTTP side. Prints each request's latency and, at p50, what
// each part adds; saves bench/results/check-anatomy-<time>.json.
//
//   npx node bench/check-anatomy.mjs [--rounds 3000]
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/harness.mjs";
import { load1, round, startLoad } from "./lib.mjs";
import { startReceiver } from "./receiver.mjs";
import { latency, setup, toolContext } from "./scenarios.mjs";

const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "3000" } } });
const KINDS = {
  worker: "GET /healthz (Worker only)",
  noop: "GET /healthz/do (no-op DO RPC)",
  authGet: "GET /bench/authenticated",
  authPost: "POST /bench/authenticated (a check's body)",
  rpc: "GET /bench/check-rpc (decide only)",
  check: "POST /api/v1/check (decide only)",
};

const receiver = await startReceiver();
const loader = startLoad((_runtime, line) => process.stderr.write(`\r\x1b[K${line}`));
const gw = await startGateway({ runtime: "serve", env: { RATE_LIMIT_ENABLED: "false", BENCH_PARSE_ONLY: "true" } });
try {
  const ctx = toolContext({ gw, receiver, load: (label, cmd) => loader.run("serve", label, cmd), plan: { latencyRounds: Number(args.rounds), latencyWarmup: 100 }, tag: "anat" });
  await setup(ctx);
  const before = load1();
  const r = await latency(ctx, { anatomy: true, only: Object.values(KINDS) });
  process.stderr.write("\r\x1b[K");
  const p50 = (k) => r.results[KINDS[k]].p50;
  const parts = [
    ["authentication (authenticated GET − Worker only)", p50("authGet") - p50("worker")],
    ["reading and checking the body (authenticated POST − GET)", p50("authPost") - p50("authGet")],
    ["the check's RPC beyond the no-op's (check-rpc − no-op)", p50("rpc") - p50("noop")],
    ["route validation and the rest (check − all of the above − Worker only)", p50("check") - p50("authPost") - p50("rpc") + p50("worker")],
  ].map(([name, ms]) => [name, round(ms, 3)]);
  console.log(`\nlatency, ms (${args.rounds} sequential rounds, interleaved; load average ${before} → ${load1()})\n`);
  console.log(`${"request".padEnd(46)}${["p50", "p90", "p99"].map((x) => x.padStart(8)).join("")}`);
  for (const k of Object.values(KINDS)) console.log(`${k.padEnd(46)}${["p50", "p90", "p99"].map((x) => String(r.results[k][x]).padStart(8)).join("")}`);
  console.log(`\nat p50, ms: the no-op is the Worker alone plus ${round(p50("noop") - p50("worker"), 3)} for the Durable Object hop; a check (decide only) adds to the no-op\n`);
  for (const [name, ms] of parts) console.log(`${name.padEnd(74)}${ms.toFixed(3).padStart(8)}`);
  console.log(`${"in all (check − no-op)".padEnd(74)}${(p50("check") - p50("noop")).toFixed(3).padStart(8)}`);
  console.log(`${"check ÷ no-op at p50 / p99".padEnd(74)}${`${round(p50("check") / p50("noop"))} / ${round(r.results[KINDS.check].p99 / r.results[KINDS.noop].p99)}`.padStart(8)}`);
  const dir = path.join(import.meta.dirname, "results");
  mkdirSync(dir, { recursive: true });
  const when = new Date().toISOString();
  const file = path.join(dir, `check-anatomy-${when.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify({ when, command: `npx node bench/check-anatomy.mjs --rounds ${args.rounds}`, loadAverage: [before, load1()], results: r.results, doHopMs: round(p50("noop") - p50("worker"), 3), partsMs: Object.fromEntries(parts) }, null, 2) + "\n");
  console.log(`\nsaved ${path.relative(process.cwd(), file)}`);
} finally {
  await gw.cleanup();
  loader.stop();
  await receiver.close();
}
