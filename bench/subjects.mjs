#!/usr/bin/env node
// Scenario 3 of `npm run bench` on its own (1 subject vs N subjects, 100 events per request), on a
// fresh `npm run serve` gateway, so that its settings can be varied — e.g. whether the subjects'
// snapshot flushes (one D1 write per subject per SNAPSHOT_INTERVAL_SECONDS; locally D1 shares the
// runtime's thread) fall inside the measured window:
//
//   npx node bench/subjects.mjs [--subjects 1000] [--seconds 35] [--rounds 1]
//   SNAPSHOT_INTERVAL_SECONDS=3600 npx node bench/subjects.mjs      # flushes after the window
//
// --rounds N measures N windows in a row on the same subjects: how throughput changes as the
// customers' databases age (docs/performance.md, 1,000 subjects).
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/harness.mjs";
import { load1, startLoad } from "./lib.mjs";
import { startReceiver } from "./receiver.mjs";
import { ingestRun, plan, setup, toolContext } from "./scenarios.mjs";

const { values: args } = parseArgs({ options: { subjects: { type: "string", default: "1000" }, seconds: { type: "string", default: "35" }, rounds: { type: "string", default: "1" } } });
const receiver = await startReceiver();
const loader = startLoad(() => {});
const gw = await startGateway({ runtime: "serve", env: { RATE_LIMIT_ENABLED: "false", LOG_SNAPSHOT_FLUSHES: "true" } });
try {
  const ctx = toolContext({ gw, receiver, load: (label, cmd) => loader.run("serve", label, cmd), plan: plan(false), tag: "s3" });
  await setup(ctx);
  const seconds = Number(args.seconds);
  const runs = {};
  for (const [label, subjects] of [["1 subject", 1], [`${args.subjects} subjects`, Number(args.subjects)]]) {
    const prefix = `${ctx.tag}-${subjects}`;
    for (let round = 1; round <= Number(args.rounds); round++) {
      // The last round's figures are the ones compared.
      const r = (runs[label] = await ingestRun(ctx, `s3 ${label}`, { batch: 100, subjects, seconds, prefix, skipEntitle: round > 1 }));
      const fsync = r.storageSyncsPerRequest === null ? "" : ` · ${r.storageSyncsPerRequest} fsync/req`;
      console.log(`${label}, round ${round}: ${r.eventsPerSecond.toLocaleString("en-US")} ev/s · p50 ${r.latencyMs.p50} · p99 ${r.latencyMs.p99} ms · ${r.gatewayCpuUsPerEvent} µs CPU/event${fsync} · load average ${load1()}`);
    }
  }
  const [one, many] = Object.values(runs);
  console.log(`ratio: ${Math.round((100 * many.eventsPerSecond) / one.eventsPerSecond)}% (SNAPSHOT_INTERVAL_SECONDS=${process.env.SNAPSHOT_INTERVAL_SECONDS ?? "30 (default)"})`);
} finally {
  await gw.cleanup();
  loader.stop();
  await receiver.close();
}
