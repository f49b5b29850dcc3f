#!/usr/bin/env node
// `npm run chaos`: exactness under chaos (issue 6). Several producer processes send events at once
// — random batch sizes and order, ~30% of batches sent again, late events, many subjects, unmeterable
// events and invalid requests — while the gateway is SIGKILLed and restarted on the same state. At the
// end every total the gateway answers (per subject and meter and aggregation, per DAY window, entitlement
// usage, namespace-wide D1 snapshots, the stored event log) must equal an oracle computed from what the
// producers generated, and threshold webhooks must arrive once per threshold (scripts/chaos/webhooks.mjs).
// Prints the figures, saves them to bench/results/chaos-<time>.json, exits 1 on any difference.
//
//   npm run chaos                 # 4 producers, 50 subjects, 4 kills (~2 min)
//   npm run chaos -- --quick      # 2 producers, 20 subjects, 2 kills (< 90 s; run by the e2e suite)
//   options: --producers N --subjects N --rate EVENTS_PER_S_PER_PRODUCER --kills N --seed N
//            --runtime dev|serve --no-event-log (skip reading back every stored event)
//
// Why distinct event times per subject: LATEST keeps the value with the latest event time, and a tie
// goes to the later-ingested event, which depends on arrival order under chaos. With distinct times
// the oracle needs no knowledge of arrival order (producers make their times distinct: see producer.mjs).
import { fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/harness.mjs";
import { storedEvents, countedEvents } from "./chaos/oracle.mjs";
import { rng } from "./chaos/random.mjs";
import { setupWebhooks, verifyWebhooks } from "./chaos/webhooks.mjs";
import { verifyEntitlements, verifyEventLog, verifyNamespace, verifySubjects } from "./chaos/verify.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DAY = 86_400_000;
const EVENT_TYPE = "chaos.usage";
const OTHER_TYPE = "chaos.other";
const AGGREGATIONS = ["SUM", "COUNT", "UNIQUE_COUNT", "AVG", "MIN", "MAX", "LATEST"];

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    producers: { type: "string" },
    subjects: { type: "string" },
    rate: { type: "string" },
    kills: { type: "string" },
    seed: { type: "string" },
    runtime: { type: "string", default: "dev" },
    "no-event-log": { type: "boolean", default: false },
  },
});
const quick = args.quick;
const cfg = {
  mode: quick ? "quick" : "full",
  runtime: args.runtime,
  producers: Number(args.producers ?? (quick ? 2 : 4)),
  subjects: Number(args.subjects ?? (quick ? 20 : 50)),
  eventsPerSecond: Number(args.rate ?? (quick ? 150 : 400)),
  kills: Number(args.kills ?? (quick ? 2 : 4)),
  /** How long the gateway stays up between kills (it takes ~10–20 s to come back on this machine). */
  uptimeMs: quick ? [4_000, 6_000] : [5_000, 8_000],
  finalUptimeMs: quick ? 3_000 : 6_000,
  seed: Number(args.seed ?? Math.floor(Math.random() * 2 ** 31)),
  eventLog: !args["no-event-log"],
};
const random = rng(cfg.seed);
const log = (msg) => console.log(`[chaos +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
const t0 = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const subjects = Array.from({ length: cfg.subjects }, (_, i) => `chaos-s${String(i).padStart(2, "0")}`);
/** Every fourth subject has the three entitlements below. */
const entitled = subjects.filter((_, i) => i % 4 === 0);
const meters = AGGREGATIONS.map((aggregation) => ({
  slug: `chaos_${aggregation.toLowerCase()}`,
  aggregation,
  body: {
    slug: `chaos_${aggregation.toLowerCase()}`,
    eventType: EVENT_TYPE,
    aggregation,
    ...(aggregation === "COUNT" ? {} : { valueProperty: aggregation === "UNIQUE_COUNT" ? "$.user" : "$.value" }),
    groupBy: { model: "$.model" },
  },
}));
const startedAt = Date.now();
/**
 * Periods chosen so that some late events fall before the current period (and must not count):
 * tokens — MONTH anchored 6 days ago, model m0 only (late events 9 days back are outside);
 * requests — DAY anchored at a UTC midnight (only today's events count); users — distinct users, MONTH.
 */
const features = [
  { key: "chaos_tokens", meterSlug: "chaos_sum", aggregation: "SUM", filters: { model: "m0" }, interval: "MONTH", anchor: startedAt - 6 * DAY },
  { key: "chaos_requests", meterSlug: "chaos_count", aggregation: "COUNT", interval: "DAY", anchor: Date.parse("2026-01-01T00:00:00Z") },
  { key: "chaos_users", meterSlug: "chaos_unique_count", aggregation: "UNIQUE_COUNT", interval: "MONTH", anchor: startedAt - 20 * DAY },
];

async function main() {
  log(`mode ${cfg.mode}: ${cfg.producers} producers × ${cfg.eventsPerSecond} new events/s, ${cfg.subjects} subjects, ${cfg.kills} kills, runtime ${cfg.runtime}, seed ${cfg.seed}`);
  let gw = await startGateway({ runtime: cfg.runtime, env: { CONFIG_CACHE_SECONDS: "0", SNAPSHOT_INTERVAL_SECONDS: "2" } });
  const call = (p, init) => gw.fetch(p, init);
  const post = async (p, body) => {
    const res = await call(p, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`POST ${p} → ${res.status}: ${text}`);
    return JSON.parse(text);
  };
  const summary = { config: cfg, startedAt: new Date(startedAt).toISOString() };
  let ok = false;
  let webhooks;
  try {
    log(`gateway up at ${gw.baseUrl} (state ${gw.stateDir})`);
    for (const m of meters) await post("/api/v1/meters", m.body);
    for (const f of features) await post("/api/v1/features", { key: f.key, name: f.key, meterSlug: f.meterSlug, ...(f.filters ? { meterGroupByFilters: f.filters } : {}) });
    for (const subject of entitled) {
      for (const f of features) {
        await post(`/api/v1/subjects/${subject}/entitlements`, {
          type: "metered",
          featureKey: f.key,
          usagePeriod: { interval: f.interval, anchor: new Date(f.anchor).toISOString() },
          measureUsageFrom: "CURRENT_PERIOD_START",
          issueAfterReset: 1_000_000_000,
        });
      }
    }
    const ingestKey = (await post("/api/v1/keys", { name: "chaos producers", scopes: ["ingest"] })).key;
    webhooks = await setupWebhooks(post, "chaos_requests");
    log(`${meters.length} meters, ${features.length} features, ${entitled.length * features.length} entitlements; forking producers`);

    // ---- Producers run while the gateway is killed and restarted. ----
    const deadline = Date.now() + 10 * 60_000;
    const children = [];
    /** Which producers have a request in flight right now. */
    const busy = new Array(cfg.producers).fill(false);
    const reports = [];
    const fatal = [];
    for (let p = 0; p < cfg.producers; p++) {
      const child = fork(path.join(ROOT, "scripts", "chaos", "producer.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
      const done = new Promise((resolve) => {
        child.on("message", (m) => {
          if (m.type === "busy") busy[p] = m.busy;
          if (m.type === "report") reports.push(m);
          if (m.type === "fatal") fatal.push(`producer ${p}: ${m.message}`);
        });
        child.on("exit", (code) => resolve(code));
      });
      child.send({ type: "start", producer: p, baseUrl: gw.baseUrl, apiKey: ingestKey, subjects, seed: cfg.seed + p + 1, eventsPerSecond: cfg.eventsPerSecond, eventType: EVENT_TYPE, otherType: OTHER_TYPE, retentionDays: 35, deadline });
      children.push({ child, done });
    }
    const kills = [];
    for (let k = 1; k <= cfg.kills; k++) {
      await sleep(cfg.uptimeMs[0] + random() * (cfg.uptimeMs[1] - cfg.uptimeMs[0]));
      // Aim at requests in flight (the crash that matters: committed, not yet acknowledged), for up to 2 s.
      for (const until = Date.now() + 2_000; Date.now() < until && busy.filter(Boolean).length < Math.ceil(cfg.producers / 2); ) await sleep(5);
      const inFlight = busy.filter(Boolean).length;
      const killedAt = Date.now();
      await gw.kill9();
      log(`kill ${k}: SIGKILL to the gateway's process group (${inFlight} of ${cfg.producers} producers with a request in flight)`);
      gw = await gw.start();
      const upAt = Date.now();
      kills.push({ killedAt: new Date(killedAt).toISOString(), producersInFlight: inFlight, downMs: upAt - killedAt });
      log(`kill ${k}: gateway back after ${((upAt - killedAt) / 1000).toFixed(1)} s`);
    }
    await sleep(cfg.finalUptimeMs);
    log("stopping producers (each finishes its request in flight)");
    for (const { child } of children) child.send({ type: "stop" });
    const codes = await Promise.all(children.map((c) => c.done));
    if (fatal.length || reports.length !== cfg.producers) throw new Error(`producers failed (exit codes ${codes}):\n${fatal.join("\n")}`);

    // ---- The oracle, from the producers' reports only. ----
    const ledger = reports.flatMap((r) => r.ledger);
    const sum = (k) => reports.reduce((a, r) => a + r.stats[k], 0);
    const lastAckAt = Math.max(...reports.map((r) => r.lastAckAt));
    const counted = countedEvents(ledger, EVENT_TYPE);
    const figures = {
      eventsGenerated: ledger.length,
      eventsCounted: counted.length,
      eventsStoredOnly: storedEvents(ledger).length - counted.length,
      eventsUnmeterable: ledger.filter((e) => e.fate === "reject").length,
      eventsInInvalidRequests: ledger.filter((e) => e.fate === "invalid").length,
      requests: sum("requests"),
      attempts: sum("attempts"),
      retries: sum("retries"),
      resentBatches: sum("resentBatches"),
      eventsSentInclResends: sum("eventsSent"),
      eventsAcknowledged: sum("acknowledged"),
      repliedAccepted: sum("accepted"),
      repliedDuplicates: sum("duplicates"),
      repliedRejected: sum("rejected"),
      invalidRequestsAnswered400: sum("invalidAnswered"),
      networkErrors: sum("networkErrors"),
      attemptsRefused: sum("refused"),
      attemptsCutMidFlight: sum("cut"),
      retriesFindingEventsStored: sum("storedBeforeCut"),
      answers5xx: sum("status5xx"),
      answers429: sum("status429"),
      kills: kills.length,
      subjects: subjects.length,
      producers: cfg.producers,
    };
    summary.figures = figures;
    summary.kills = kills;
    log(`producers done: ${JSON.stringify(figures)}`);
    const replyProblems = reports.flatMap((r) => r.problems);

    // ---- Compare. Per-subject answers first (exact at once), while D1 flushes catch up. ----
    const from = new Date(startedAt - 11 * DAY).toISOString();
    const checks = {};
    checks.replies = { compared: figures.requests, differences: replyProblems };
    checks.perSubject = await verifySubjects(call, { meters, subjects, ledger, eventType: EVENT_TYPE, from });
    log(`per-subject queries: ${checks.perSubject.compared} rows compared, ${checks.perSubject.differences.length} differences`);
    checks.entitlements = await verifyEntitlements(call, { features, entitled, ledger, eventType: EVENT_TYPE });
    log(`entitlement usage: ${checks.entitlements.compared} values compared, ${checks.entitlements.differences.length} differences`);
    checks.webhooks = await verifyWebhooks(webhooks, checks.entitlements.usage.chaos_requests ?? new Map(), 60_000);
    log(`threshold webhooks: ${checks.webhooks.notifications} notifications in ${checks.webhooks.requests} requests for ${checks.webhooks.compared} subjects, ${checks.webhooks.differences.length} differences`);
    delete checks.entitlements.usage;
    if (cfg.eventLog) {
      checks.eventLog = await verifyEventLog(call, { subjects, ledger, from: Date.parse(from) });
      log(`event log: ${checks.eventLog.compared} events read back in ${checks.eventLog.pages} pages, ${checks.eventLog.differences.length} differences`);
    }
    checks.namespace = await verifyNamespace(call, { meters, ledger, eventType: EVENT_TYPE, from, lastAckAt, timeoutMs: 120_000 });
    log(`namespace (D1 snapshots, after ${(checks.namespace.waitedMs / 1000).toFixed(1)} s for flushes): ${checks.namespace.compared} rows compared, ${checks.namespace.differences.length} differences`);

    const differences = Object.values(checks).flatMap((c) => c.differences);
    summary.checks = Object.fromEntries(Object.entries(checks).map(([k, c]) => [k, { ...c, differences: c.differences.length, examples: c.differences.slice(0, 20) }]));
    summary.totalsCompared = Object.values(checks).reduce((a, c) => a + c.compared, 0);
    summary.differences = differences.length;
    ok = differences.length === 0;
    for (const d of differences.slice(0, 50)) console.log(`  DIFFERENCE ${d}`);
    if (differences.length > 50) console.log(`  … and ${differences.length - 50} more`);
  } finally {
    summary.durationMs = Date.now() - t0;
    summary.result = ok ? "pass" : "FAIL";
    await gw.cleanup().catch((e) => console.error(`cleanup: ${e.message}`));
    await webhooks?.rx.close();
  }
  const out = path.join(ROOT, "bench", "results", `chaos-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(summary, null, 2));
  const f = summary.figures;
  console.log(
    `\nchaos ${cfg.mode}: ${summary.result} — ${f.eventsGenerated} events generated (${f.eventsCounted} counted, ${f.eventsStoredOnly} stored only, ` +
      `${f.eventsUnmeterable} unmeterable, ${f.eventsInInvalidRequests} in ${f.invalidRequestsAnswered400} invalid requests), ` +
      `${f.eventsSentInclResends} sent incl. ${f.resentBatches} resent batches, ${f.eventsAcknowledged} acknowledged ` +
      `(replies: ${f.repliedAccepted} accepted, ${f.repliedDuplicates} duplicates, ${f.repliedRejected} rejected), ` +
      `${f.retries} retries (${f.attemptsCutMidFlight} attempts cut mid-flight, ${f.retriesFindingEventsStored} retries found their events already stored), ` +
      `${f.kills} kills, ${f.subjects} subjects, ${summary.checks?.webhooks?.notifications ?? 0} threshold webhooks; ` +
      `${summary.totalsCompared} totals compared, ${summary.differences} differences ` +
      `(${(summary.durationMs / 1000).toFixed(0)} s; ${path.relative(ROOT, out)})`,
  );
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(`chaos: ${err.stack ?? err}`);
  process.exitCode = 1;
});
