// The scenarios of `npm run bench` (issue 8), run against one gateway. Each returns plain figures;
// bench/report.mjs turns them into the table, the targets and the cost model.
//
// The workload throughout: one SUM meter with one groupBy (tokens by model), a feature on it, and
// for every subject that receives load one metered entitlement with a threshold notification rule
// whose channel is the local receiver (bench/receiver.mjs). Load comes from bench/load.mjs in its
// own process; setup, probes and the latency of webhooks and snapshots are driven from here.
import { EVENT_TYPE, groupCpuMs, HOOK_METER, HOOK_TYPE, LAG_METER, LAG_TYPE, METER, nowMs, round, sleep } from "./lib.mjs";
import { snapshotLag, webhookLatency } from "./delivery.mjs";


/** Durations and sizes: the quick mode is a smoke test of the harness (< 1 minute), not a measurement. */
export function plan(quick) {
  return quick
    ? { seconds: 1, warmup: 0.5, many: 50, latencyRounds: 30, latencyWarmup: 5, hookSubjects: 2, probeBatches: 2, lag: { subjects: 3, batch: 50, everyMs: 500, seconds: 2 } }
    : { seconds: 10, warmup: 2, many: 1000, latencyRounds: 2000, latencyWarmup: 50, hookSubjects: 20, probeBatches: 5, lag: { subjects: 8, batch: 50, everyMs: 1000, seconds: 60 } };
}

/**
 * The scenario context of a tool that drives one gateway with the defaults' settings (bench:profile,
 * compare-builds, subjects, perf-subjects): no progress lines, definitions cached 5 s. `tag` prefixes
 * this run's meters and subjects.
 */
export function toolContext({ gw, receiver, load, plan, tag }) {
  return { gw, plan, tag: `${tag}${Date.now().toString(36)}`, api: apiOf(gw), receiver, configCacheSeconds: 5, progress: () => {}, load };
}

/** Calls the gateway as its admin; throws on an unexpected status. */
export function apiOf(gw) {
  return async (method, path, body, expect) => {
    const res = await gw.fetch(path, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    const ok = expect === undefined ? res.ok : res.status === expect;
    if (!ok) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 500)}`);
    return text ? JSON.parse(text) : undefined;
  };
}

/**
 * Every definition the scenarios use, created before any traffic so that no isolate caches an older
 * set: the load meter and feature with a rule whose thresholds are high (crossed now and then, as in
 * real use); a COUNT meter whose rule has thresholds 1..10 (scenario 5); a meter for scenario 6.
 */
export async function setup(ctx) {
  const { api, receiver } = ctx;
  const channel = await api("POST", "/api/v1/notification/channels", { type: "WEBHOOK", name: "bench", url: receiver.url, signingSecret: receiver.secret });
  const rule = (name, feature, values) =>
    api("POST", "/api/v1/notification/rules", { type: "entitlements.balance.threshold", name, channels: [channel.id], thresholds: values.map((value) => ({ type: "usage_value", value })), features: [feature] });
  await api("POST", "/api/v1/meters", { slug: METER, eventType: EVENT_TYPE, aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model" } });
  await api("POST", "/api/v1/features", { key: METER, name: "Bench tokens", meterSlug: METER });
  await rule("bench load", METER, [1e5, 1e6, 1e7, 1e8, 1e9]);
  await api("POST", "/api/v1/meters", { slug: HOOK_METER, eventType: HOOK_TYPE, aggregation: "COUNT" });
  await api("POST", "/api/v1/features", { key: HOOK_METER, name: "Bench calls", meterSlug: HOOK_METER });
  await rule("bench webhook latency", HOOK_METER, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  await api("POST", "/api/v1/meters", { slug: LAG_METER, eventType: LAG_TYPE, aggregation: "SUM", valueProperty: "$.n", groupBy: { model: "$.model" } });
  // Definitions reach Durable Objects through each isolate's cache (CONFIG_CACHE_SECONDS).
  await sleep(ctx.configCacheSeconds * 1000 + 500);
  return { channelId: channel.id };
}

/** One metered entitlement per subject, 16 at a time (this also creates each subject's Durable Object). */
export async function entitle(ctx, subjects, featureKey = METER) {
  let next = 0;
  const one = async () => {
    while (next < subjects.length) {
      const s = subjects[next++];
      await ctx.api("POST", `/api/v1/subjects/${encodeURIComponent(s)}/entitlements`, { type: "metered", featureKey, issueAfterReset: 1e15, usagePeriod: { interval: "MONTH" } }, 201);
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, subjects.length) }, one));
}

const stats = (ctx, subject) => ctx.api("GET", `/api/v1/debug/subjects/${encodeURIComponent(subject)}/storage`);

function costDelta(before, after, sent) {
  if (!before || !after || before.instanceStartedAt !== after.instanceStartedAt) return null; // the DO restarted: counters lost
  const d = (k) => after[k] - before[k];
  const stored = d("events");
  return {
    newEvents: stored,
    rowsWritten: d("rowsWritten"),
    rowsRead: d("rowsRead"),
    alarmsSet: d("alarmsSet"),
    alarms: d("alarms"),
    statements: d("statements"),
    // setAlarm() is billed as a row written, so it is counted with them.
    rowsWrittenPerNewEvent: stored > 0 ? round((d("rowsWritten") + d("alarmsSet")) / stored, 4) : null,
    rowsReadPerEvent: sent.events > 0 ? round(d("rowsRead") / sent.events, 3) : null,
    statementsPerRequest: sent.requests > 0 ? round(d("statements") / sent.requests, 2) : null,
    bytesPerNewEvent: stored > 0 ? round((after.databaseSize - before.databaseSize) / stored, 1) : null,
  };
}

/** One closed-loop run of the load generator; with one subject, the DO's SQL cost of the run too. */
export async function ingestRun(ctx, label, o) {
  const subjects = o.subjects ?? 1;
  const prefix = o.prefix ?? `${ctx.tag}-${label.replace(/\W+/g, "-")}`;
  const path = o.path ?? "/api/v1/events";
  const metered = path === "/api/v1/events";
  if (metered && !o.skipEntitle) await entitle(ctx, subjects === 1 ? [`${prefix}-0`] : Array.from({ length: subjects }, (_, i) => `${prefix}-${i}`));
  const before = metered && subjects === 1 ? await stats(ctx, `${prefix}-0`) : null;
  const result = await ctx.load(label, {
    cmd: "ingest",
    baseUrl: ctx.gw.baseUrl,
    adminKey: ctx.gw.adminKey,
    pgid: ctx.gw.pid,
    path,
    type: EVENT_TYPE,
    tag: `${prefix}-${Date.now().toString(36)}`,
    subjectPrefix: prefix,
    subjects,
    batch: o.batch,
    dupRate: o.dupRate ?? 0,
    ids: o.ids ?? "ordered",
    connections: 16,
    seconds: o.seconds ?? ctx.plan.seconds,
    warmupSeconds: o.warmup ?? ctx.plan.warmup,
    prime: o.prime ?? subjects > 1,
  });
  // A failed request is a finding, reported with the figures (table row "server errors"), not a
  // reason to lose every other scenario of the run.
  if (result.errors + result.primeErrors > 0) ctx.progress(`${label}: ${result.errors + result.primeErrors} requests failed, e.g. ${result.lastError}`);
  if (result.requests === 0) throw new Error(`${label}: no request succeeded, e.g. ${result.lastError}`);
  if (before) {
    const after = await stats(ctx, `${prefix}-0`);
    result.cost = costDelta(before, after, result.whole);
    result.storage = { databaseSize: after.databaseSize, events: after.events, buckets: after.buckets };
  }
  result.subjects = subjects;
  result.batch = o.batch;
  result.dupRate = o.dupRate ?? 0;
  result.ids = o.ids ?? "ordered";
  result.subject = `${prefix}-0`;
  result.prefix = prefix;
  return result;
}

/** Scenarios 1, 2, 3 and 8: every throughput run. */
export async function throughput(ctx) {
  const out = { ingest: {}, duplicates: {}, subjects: {}, ceiling: null };
  for (const batch of [1, 100, 1000]) out.ingest[batch] = await ingestRun(ctx, `s1 ingest ${batch}/req`, { batch });
  // Random ids scatter every insert over the whole dedupe index (one page per event); shown, not a target.
  out.randomIds = await ingestRun(ctx, "s1 ingest 1000/req uuid4", { batch: 1000, ids: "uuid" });
  // Right after the 1,000-event ingest run, in the same conditions: what the runtime allows at all.
  out.ceiling = await ingestRun(ctx, "s8 parse-only 1000/req", { batch: 1000, path: "/bench/parse-only" });
  for (const batch of [1, 100, 1000]) out.duplicates[batch] = await ingestRun(ctx, `s2 20% dup ${batch}/req`, { batch, dupRate: 0.2 });
  // Each request carries one subject's batch (a per-customer batcher); requests rotate over the subjects.
  // Measured over one snapshot interval and more (full mode): each subject's flush to D1 then falls
  // in the window once, as in steady traffic. In 10 s it fell in none (1,000 subjects looked cheaper
  // than they are) or, when setup ran long, all 1,000 at once.
  const seconds = ctx.quick ? ctx.plan.seconds : Math.max(ctx.plan.seconds, ctx.snapshotInterval + 5);
  out.subjects.one = await ingestRun(ctx, "s3 1 subject 100/req", { batch: 100, seconds });
  ctx.progress(`s3: creating ${ctx.plan.many} subjects' entitlements`);
  out.subjects.many = await ingestRun(ctx, `s3 ${ctx.plan.many} subjects 100/req`, { batch: 100, subjects: ctx.plan.many, seconds });
  return out;
}

/** Scenario 4: check and value next to the no-op Worker → DO round trip, sequential and interleaved. */
export async function latency(ctx, extra = {}) {
  const subject = `${ctx.tag}-latency`;
  await entitle(ctx, [subject]);
  return ctx.load("s4 check/value latency", {
    cmd: "latency",
    baseUrl: ctx.gw.baseUrl,
    adminKey: ctx.gw.adminKey,
    subject,
    feature: METER,
    type: EVENT_TYPE,
    tag: `${ctx.tag}-lat`,
    rounds: ctx.plan.latencyRounds,
    warmup: ctx.plan.latencyWarmup,
    ...extra,
  });
}

/** Scenarios 7 and 9's exact figures: storage per event and per subject; rows for new events and for duplicates. */
export async function storageAndRows(ctx, runs) {
  const big = runs.ingest[1000];
  const many = runs.subjects.many;
  const sample = Array.from({ length: Math.min(20, many.subjects) }, (_, i) => `${many.prefix}-${Math.floor((i * many.subjects) / 20)}`);
  const sizes = await Promise.all(sample.map((s) => stats(ctx, s)));
  const mean = (k) => Math.round(sizes.reduce((n, s) => n + s[k], 0) / sizes.length);

  // A fresh subject: N batches of 1,000 new events, then the same N batches again (all duplicates).
  // Values of 1 keep its usage below the rule's first threshold: no webhook work lands in the window.
  const subject = `${ctx.tag}-probe`;
  await entitle(ctx, [subject]);
  const batches = Array.from({ length: ctx.plan.probeBatches }, (_, b) =>
    Array.from({ length: 1000 }, (_, i) => ({ specversion: "1.0", id: `${ctx.tag}-p-${b}-${i}`, source: "bench", type: EVENT_TYPE, subject, time: new Date().toISOString(), data: { tokens: 1, model: ["a", "b", "c", "d"][i % 4] } })),
  );
  const send = async () => {
    for (const events of batches) await ctx.api("POST", "/api/v1/events", events, 202);
  };
  const sent = { events: batches.length * 1000, requests: batches.length };
  const s0 = await stats(ctx, subject);
  await send();
  const s1 = await stats(ctx, subject);
  const fresh = costDelta(s0, s1, sent);
  // Rows written while only duplicates arrive can come from an alarm (a snapshot flush of the new
  // events): measure in a window without one, retrying a few times.
  let dup = null;
  for (let attempt = 0; attempt < 5 && (!dup || dup.alarms > 0); attempt++) {
    const a = await stats(ctx, subject);
    await send();
    dup = costDelta(a, await stats(ctx, subject), sent);
  }
  return {
    bytesPerRetainedEvent: big.storage ? round(big.storage.databaseSize / big.storage.events, 1) : null,
    marginalBytesPerEvent: big.cost?.bytesPerNewEvent ?? null,
    retained: big.storage,
    perSubject: { sampled: sizes.length, meanDatabaseSize: mean("databaseSize"), meanEvents: mean("events") },
    probe: {
      batches: batches.length,
      newEvents: fresh && { ...fresh, rowsReadPerEvent: fresh.rowsReadPerEvent },
      duplicates: dup && { rowsWritten: dup.rowsWritten + dup.alarmsSet, rowsWrittenPerDuplicate: round((dup.rowsWritten + dup.alarmsSet) / sent.events, 4), rowsReadPerDuplicate: dup.rowsReadPerEvent, stored: dup.newEvents, alarmsInWindow: dup.alarms },
    },
  };
}

/**
 * Lets the work earlier scenarios deferred run out before a latency scenario. A throughput run leaves
 * work behind: every subject it wrote to flushes its snapshot to D1 one SNAPSHOT_INTERVAL_SECONDS
 * later (1,000 subjects: 1,000 alarms, each starting an evicted Durable Object and writing to D1).
 * On one machine that work shares the runtime's thread with the next scenario, which would then
 * measure other customers' flushes instead of its own latency (seen: webhook p99 0.5–1.2 s on serve).
 * So: wait one interval (+5 s), then until the gateway's processes use under 10% of a core for 2 s
 * in a row (at most 30 s more). Returns the seconds waited; the quick mode does not wait.
 */
export async function settle(ctx) {
  if (ctx.quick) return 0; // the smoke test has its minute to keep
  const started = nowMs();
  const deferredFor = (ctx.snapshotInterval + 5) * 1000;
  while (nowMs() - started < deferredFor) {
    ctx.progress(`settling: letting deferred snapshot flushes run (${Math.round((nowMs() - started) / 1000)}/${deferredFor / 1000} s)`);
    await sleep(Math.min(1000, deferredFor - (nowMs() - started)));
  }
  let before = groupCpuMs(ctx.gw.pid);
  if (before === null) return round((nowMs() - started) / 1000, 1);
  const giveUpAt = nowMs() + 30_000;
  for (let quiet = 0; quiet < 2 && nowMs() < giveUpAt; ) {
    await sleep(1000);
    const after = groupCpuMs(ctx.gw.pid);
    quiet = after - before < 100 ? quiet + 1 : 0;
    before = after;
    ctx.progress(`settling: waiting for the gateway to be idle (${Math.round((nowMs() - started) / 1000)} s)`);
  }
  return round((nowMs() - started) / 1000, 1);
}

/** Every scenario against one running gateway, in an order that keeps the throughput runs together. */
export async function runAll(ctx) {
  const started = nowMs();
  const loadAverage = [ctx.loadAverage()];
  ctx.progress("setup: meter, feature, webhook channel, threshold rule");
  ctx.channelId = (await setup(ctx)).channelId;
  ctx.entitle = (subjects, feature) => entitle(ctx, subjects, feature);
  const runs = await throughput(ctx);
  const settled = { beforeLatency: await settle(ctx) };
  const lat = await latency(ctx);
  const storage = await storageAndRows(ctx, runs);
  settled.beforeWebhooks = await settle(ctx);
  const webhook = await webhookLatency(ctx);
  const snapshots = await snapshotLag(ctx);
  loadAverage.push(ctx.loadAverage());
  return { seconds: round((nowMs() - started) / 1000, 1), loadAverage, settledSeconds: settled, runs, latency: lat, storage, webhook, snapshots };
}
