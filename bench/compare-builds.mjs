#!/usr/bin/env node
// A/B of two checkouts of edgemeter under the same load: this one and --old (e.g. a `git worktree`
// of an earlier commit, with node_modules linked). Each round starts `npm run serve` from the old
// checkout, then from this one (the other way round in even rounds), and measures batches (1,000 events unless --batch) to one subject, all new and with
// 20% re-sent, through this checkout's load generator (so both see the same ids and bodies).
//
//   git worktree add ../edgemeter-old <commit> && ln -s "$PWD/node_modules" ../edgemeter-old/node_modules
//   node bench/compare-builds.mjs --old ../edgemeter-old [--rounds 2] [--seconds 8] [--batch 1000] [--latency | --subjects 1000]
//   git worktree remove ../edgemeter-old
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { load1, startLoad } from "./lib.mjs";
import { startReceiver } from "./receiver.mjs";
import { ingestRun, latency, setup, toolContext } from "./scenarios.mjs";

const { values: args } = parseArgs({ options: { old: { type: "string" }, rounds: { type: "string", default: "2" }, seconds: { type: "string", default: "8" }, batch: { type: "string", default: "1000" }, latency: { type: "boolean", default: false }, subjects: { type: "string" } } });
if (!args.old) throw new Error("--old <checkout directory> is required");
const builds = { old: path.resolve(args.old), new: path.resolve(import.meta.dirname, "..") };

const receiver = await startReceiver();
const loader = startLoad(() => {});
try {
  for (let round = 1; round <= Number(args.rounds); round++) {
    // Alternating which build goes first: the second of a pair ran faster often enough to matter.
    const order = round % 2 === 1 ? Object.entries(builds) : Object.entries(builds).reverse();
    for (const [name, dir] of order) {
      const { startGateway } = await import(pathToFileURL(path.join(dir, "test", "e2e", "harness.mjs")).href);
      // As npm run bench sets them (a build that predates LOG_SNAPSHOT_FLUSHES logs every flush anyway).
      const gw = await startGateway({ runtime: "serve", env: { RATE_LIMIT_ENABLED: "false", LOG_SNAPSHOT_FLUSHES: "true" } });
      try {
        const ctx = toolContext({ gw, receiver, load: (label, cmd) => loader.run(name, label, cmd), plan: { seconds: Number(args.seconds), warmup: 2 }, tag: "ab" });
        await setup(ctx);
        if (args.latency) {
          // Scenario 4 instead: check, value and the no-op round trip, sequential and interleaved.
          ctx.plan = { ...ctx.plan, latencyRounds: 1000, latencyWarmup: 50 };
          const r = await latency(ctx);
          for (const [kind, x] of Object.entries(r.results)) console.log(`round ${round} · ${name} · ${kind}: p50 ${x.p50} · p90 ${x.p90} · p99 ${x.p99} ms`);
          continue;
        }
        // --subjects N: scenario 3 instead (1 subject vs N, batches of --batch events; use --seconds 35 as the bench does).
        const cases = args.subjects
          ? [["1 subject", { batch: Number(args.batch) }], [`${args.subjects} subjects`, { batch: Number(args.batch), subjects: Number(args.subjects) }]]
          : [["all new", { batch: Number(args.batch) }], ["20% re-sent", { batch: Number(args.batch), dupRate: 0.2 }]];
        for (const [label, o] of cases) {
          const r = await ingestRun(ctx, `${name} ${label}`, o);
          console.log(`round ${round} · ${name} · ${args.batch}/req ${label}: ${Math.round(r.eventsPerSecond).toLocaleString("en-US")} ev/s · ${r.gatewayCpuUsPerEvent?.toFixed(1)} µs CPU/event${r.storageSyncsPerRequest === null ? "" : ` · ${r.storageSyncsPerRequest} fsync/req · ${r.pageReadsPerRequest} pread/req`} · load average ${load1()}`);
        }
      } finally {
        await gw.cleanup();
      }
    }
  }
} finally {
  loader.stop();
  await receiver.close();
}
