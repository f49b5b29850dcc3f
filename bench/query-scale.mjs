#!/usr/bin/env node
// Per-subject meter queries over a long history: one subject with an event in every minute of the
// last --minutes minutes (1,000,000 ≈ 1.9 years, three group-by values), then each query --rounds
// times on a fresh `npm run serve` gateway. What a query costs grows with the buckets it reads;
// this shows by how much. --old <checkout> runs the same against another build first (an A/B; see
// compare-builds.mjs for making one with `git worktree`).
//
//   npx node bench/query-scale.mjs [--minutes 1000000] [--rounds 5] [--old ../edgemeter-old]
import { writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { load1, nowMs, round, timeQueries } from "./lib.mjs";

const { values: args } = parseArgs({ options: { minutes: { type: "string", default: "1000000" }, rounds: { type: "string", default: "5" }, old: { type: "string" } } });
const minutes = Number(args.minutes);
const builds = [...(args.old ? [["old", path.resolve(args.old)]] : []), ["this", path.resolve(import.meta.dirname, "..")]];
const SUBJECT = "long-history";
const QUERIES = [
  ["total", ""],
  ["total, groupBy=model", "&groupBy=model"],
  ["DAY windows", "&windowSize=DAY"],
  ["HOUR windows", "&windowSize=HOUR"],
  ["MONTH windows, Europe/Berlin", "&windowSize=MONTH&windowTimeZone=Europe%2FBerlin"],
  ["last 24 h, HOUR windows", "&windowSize=HOUR&from=FROM_DAY"],
];

async function seed(gw) {
  const call = async (method, p, body) => {
    const res = await gw.fetch(p, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${p} → ${res.status}: ${await res.text()}`);
    return res.json();
  };
  await call("POST", "/api/v1/meters", { slug: "scale_tokens", eventType: "scale", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
  const now = Math.floor(Date.now() / 60_000) * 60_000;
  const t0 = nowMs();
  let next = 1;
  // Four senders of 1,000-event batches.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next <= minutes) {
        const first = next;
        next += 1000;
        const events = [];
        for (let i = first; i < Math.min(first + 1000, minutes + 1); i++) {
          events.push({ specversion: "1.0", id: `m${i}`, source: "bench", type: "scale", subject: SUBJECT, time: new Date(now - i * 60_000).toISOString(), data: { tokens: 1, model: `m${i % 3}` } });
        }
        const r = await call("POST", "/api/v1/events", events);
        if (r.accepted !== events.length) throw new Error(`seeding: ${JSON.stringify(r).slice(0, 300)}`);
      }
    }),
  );
  return { seedSeconds: round((nowMs() - t0) / 1000, 1) };
}

const figures = { minutes, rounds: Number(args.rounds), startedAt: new Date().toISOString(), builds: {} };
for (const [name, dir] of builds) {
  const { startGateway } = await import(pathToFileURL(path.join(dir, "test", "e2e", "harness.mjs")).href);
  const gw = await startGateway({ runtime: "serve", env: { RATE_LIMIT_ENABLED: "false", EVENT_RETENTION_DAYS: String(Math.ceil(minutes / 1440) + 2) } });
  try {
    const seeded = await seed(gw);
    console.log(`${name}: ${minutes.toLocaleString("en-US")} minutes seeded in ${seeded.seedSeconds} s · load average ${load1()}`);
    const queries = QUERIES.map(([label, q]) => [label, `/api/v1/meters/scale_tokens/query?subject=${SUBJECT}${q}`]);
    figures.builds[name] = { dir, ...seeded, queries: await timeQueries(gw, name, queries, Number(args.rounds)) };
  } finally {
    await gw.cleanup();
  }
}
const file = path.join(import.meta.dirname, "results", `query-scale-${figures.startedAt.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify(figures, null, 2));
console.log(`saved ${path.relative(process.cwd(), file)}`);
