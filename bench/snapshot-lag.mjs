#!/usr/bin/env node
// Snapshot lag and D1 write cost alone: scenario 6 of `npm run bench` (bench/delivery.mjs snapshotLag)
// against a fresh `npm start` gateway, with its traffic and SNAPSHOT_INTERVAL_SECONDS chosen here.
//
//   node bench/snapshot-lag.mjs [--subjects 8] [--batch 50] [--every-ms 1000] [--seconds 90] [--interval 30]
//
// Steady traffic: each subject sends a batch of --batch events (value 1, three group-by values) every
// --every-ms for --seconds. A poller asks the namespace-wide query (D1, grouped by subject) every 250 ms.
//   lagMs            time from a batch's 2xx to the first poll whose total for that subject includes it.
//   firstBatchLagMs  the same for each subject's first batch: its Durable Object had nothing unflushed,
//                    so this is the interval plus the flush, the worst case for a quiet customer.
//   d1               D1 rows written (meta.rows_written summed by each flush, read from its log line),
//                    per 1,000 events ingested and per flush.
// Figures are printed and saved to bench/results/snapshot-lag-<time>.json.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/harness.mjs";
import { snapshotLag } from "./delivery.mjs";
import { LAG_METER, LAG_TYPE, load1 } from "./lib.mjs";
import { apiOf } from "./scenarios.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: a } = parseArgs({
  options: {
    subjects: { type: "string", default: "8" },
    batch: { type: "string", default: "50" },
    "every-ms": { type: "string", default: "1000" },
    seconds: { type: "string", default: "90" },
    interval: { type: "string" },
  },
});
const number = (name, v) => {
  const n = Number(v);
  if (!(n >= 0)) throw new Error(`--${name} needs a number`);
  return n;
};
const lag = { subjects: number("subjects", a.subjects), batch: number("batch", a.batch), everyMs: number("every-ms", a["every-ms"]), seconds: number("seconds", a.seconds) };
const interval = a.interval === undefined ? undefined : number("interval", a.interval);

const gw = await startGateway({ env: { LOG_SNAPSHOT_FLUSHES: "true", ...(interval === undefined ? {} : { SNAPSHOT_INTERVAL_SECONDS: String(interval) }) } });
try {
  const api = apiOf(gw);
  await api("POST", "/api/v1/meters", { slug: LAG_METER, eventType: LAG_TYPE, aggregation: "SUM", valueProperty: "$.n", groupBy: { model: "$.model" } });
  const ctx = {
    api,
    gw,
    tag: `lag${Date.now().toString(36)}`,
    plan: { lag },
    snapshotInterval: interval ?? 30,
    loadAverage: load1,
    progress: (m) => process.stderr.write(`${m}\n`),
  };
  const result = { at: new Date().toISOString(), ...(await snapshotLag(ctx)) };
  console.log(JSON.stringify(result, null, 2));
  mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
  const file = path.join(ROOT, "bench", "results", `snapshot-lag-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2));
  console.log(`saved ${path.relative(ROOT, file)}`);
} finally {
  await gw.cleanup();
}
