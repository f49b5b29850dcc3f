#!/usr/bin/env node
// Namespace-wide reports over many subjects: --subjects customers, each with usage in every
// 15-minute snapshot row of the last --days days (two group-by values), flushed to D1, then each
// namespace-wide query (no `subject`) --rounds times on a fresh `npm run serve` gateway. What such a
// query costs grows with the D1 rows it reads; this shows by how much. --old <checkout> runs the same
// against another build first (an A/B; see compare-builds.mjs for making one with `git worktree`).
//
//   npx node bench/report-scale.mjs [--subjects 1000] [--days 30] [--rounds 3] [--old ../edgemeter-old]
import { writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { load1, nowMs, round, timeQueries } from "./lib.mjs";

const { values: args } = parseArgs({ options: { subjects: { type: "string", default: "1000" }, days: { type: "string", default: "30" }, rounds: { type: "string", default: "3" }, old: { type: "string" } } });
const subjects = Number(args.subjects);
const days = Number(args.days);
const builds = [...(args.old ? [["old", path.resolve(args.old)]] : []), ["this", path.resolve(import.meta.dirname, "..")]];
const GRANULE = 15 * 60_000;
const QUERIES = [
  ["total", ""],
  ["total, groupBy=subject", "&groupBy=subject"],
  ["DAY windows", "&windowSize=DAY"],
  ["MONTH windows, Europe/Berlin", "&windowSize=MONTH&windowTimeZone=Europe%2FBerlin"],
  ["last 24 h, HOUR windows", "&windowSize=HOUR&from=FROM_DAY"],
];

async function seed(gw) {
  const call = async (method, p, body) => {
    const res = await gw.fetch(p, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${p} → ${res.status}: ${await res.text()}`);
    return res.json();
  };
  await call("POST", "/api/v1/meters", { slug: "report_tokens", eventType: "report", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
  const end = Math.floor(Date.now() / GRANULE) * GRANULE;
  const perSubject = days * 96;
  const t0 = nowMs();
  let next = 0;
  // Four senders; each request is one subject's batch of up to 1,000 events, one per 15-minute row.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < subjects) {
        const s = next++;
        for (let first = 0; first < perSubject; first += 1000) {
          const events = [];
          for (let i = first; i < Math.min(first + 1000, perSubject); i++) {
            events.push({ specversion: "1.0", id: `r${s}-${i}`, source: "bench", type: "report", subject: `customer-${s}`, time: new Date(end - i * GRANULE + 60_000).toISOString(), data: { tokens: 1, model: `m${i % 2}` } });
          }
          const r = await call("POST", "/api/v1/events", events);
          if (r.accepted !== events.length) throw new Error(`seeding: ${JSON.stringify(r).slice(0, 300)}`);
        }
      }
    }),
  );
  const ingested = nowMs();
  // The subjects' alarms flush to D1 (SNAPSHOT_INTERVAL_SECONDS=1 here); wait until every event is there.
  const expected = subjects * perSubject;
  for (;;) {
    const r = await call("GET", "/api/v1/meters/report_tokens/query");
    const total = r.data.reduce((n, row) => n + row.value, 0);
    if (total === expected && r.freshness.pendingSubjects === 0) break;
    if (nowMs() - ingested > 20 * 60_000) throw new Error(`flushes did not finish: ${total} of ${expected} in D1`);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
  return { rows: expected, ingestSeconds: round((ingested - t0) / 1000, 1), flushSeconds: round((nowMs() - ingested) / 1000, 1) };
}

const figures = { subjects, days, rounds: Number(args.rounds), startedAt: new Date().toISOString(), builds: {} };
for (const [name, dir] of builds) {
  const { startGateway } = await import(pathToFileURL(path.join(dir, "test", "e2e", "harness.mjs")).href);
  const gw = await startGateway({ runtime: "serve", env: { RATE_LIMIT_ENABLED: "false", SNAPSHOT_INTERVAL_SECONDS: "1", EVENT_RETENTION_DAYS: String(days + 2) } });
  try {
    const seeded = await seed(gw);
    console.log(`${name}: ${subjects} subjects × ${days} days (${seeded.rows.toLocaleString("en-US")} 15-minute rows) ingested in ${seeded.ingestSeconds} s, in D1 ${seeded.flushSeconds} s later · load average ${load1()}`);
    const queries = QUERIES.map(([label, q]) => [label, `/api/v1/meters/report_tokens/query?${q.slice(1)}`]);
    figures.builds[name] = { dir, ...seeded, queries: await timeQueries(gw, name, queries, Number(args.rounds)) };
  } finally {
    await gw.cleanup();
  }
}
const file = path.join(import.meta.dirname, "results", `report-scale-${figures.startedAt.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, JSON.stringify(figures, null, 2));
console.log(`saved ${path.relative(process.cwd(), file)}`);
