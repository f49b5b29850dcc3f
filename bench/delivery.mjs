// Scenarios 5 and 6 of `npm run bench`: how long after an ingest 2xx a threshold webhook reaches the
// receiver, and how long until the event is visible in the namespace-wide (D1 snapshot) query.
// Both are latencies of single events, not load: they are driven from the orchestrator, one at a time.
import { HOOK_METER, HOOK_TYPE, LAG_METER, LAG_TYPE, nowMs, round, sleep, summary } from "./lib.mjs";

const GRANULE_MS = 15 * 60_000;
const sum = (list, key) => list.reduce((n, x) => n + x[key], 0);

/**
 * Scenario 5. A COUNT meter and a rule with the thresholds 1..10 (usage): each single event sent to a
 * subject crosses exactly one new threshold, so every ingest is followed by exactly one webhook.
 * Latency = arrival at the receiver − the ingest's 2xx, both on this machine's clock.
 */
export async function webhookLatency(ctx) {
  const { api, receiver, tag } = ctx;
  const type = HOOK_TYPE;
  const subjects = Array.from({ length: ctx.plan.hookSubjects }, (_, i) => `${tag}-hook-${i}`);
  await ctx.entitle(subjects, HOOK_METER);

  const samples = [];
  const errors = [];
  let missing = 0;
  const load = [ctx.loadAverage()];
  for (const subject of subjects) {
    for (let t = 1; t <= 10; t++) {
      try {
        await api("POST", "/api/v1/events", { specversion: "1.0", id: `${tag}-h-${subject}-${t}`, source: "bench", type, subject }, 202);
      } catch (e) {
        errors.push(String(e).slice(0, 300));
        continue;
      }
      const acked = nowMs();
      const d = await receiver.waitFor((x) => x.payload?.data?.subject?.key === subject && x.payload?.data?.threshold?.value === t, 10_000);
      if (d) samples.push(d.at - acked);
      else missing++;
    }
    ctx.progress(`s5 webhook latency: ${samples.length + missing}/${subjects.length * 10}`);
  }
  load.push(ctx.loadAverage());
  return { samples: samples.length, missing, errors: errors.length, lastError: errors.at(-1), invalidSignatures: receiver.invalid(), latencyMs: summary(samples), loadAverage: load };
}

/**
 * Scenario 6, also run alone by bench/snapshot-lag.mjs. Steady traffic: each subject sends a
 * batch every `everyMs`; a poller asks the namespace-wide query (D1, grouped by subject) every 250 ms.
 * Lag = the first poll whose total for the subject includes a batch − that batch's 2xx. D1 rows written
 * per 1,000 events come from the flush log lines (meta.rows_written summed by each flush).
 */
export async function snapshotLag(ctx) {
  const { api, gw, tag } = ctx;
  const o = ctx.plan.lag;
  const slug = LAG_METER;
  const type = LAG_TYPE;
  const subjects = Array.from({ length: o.subjects }, (_, i) => `${tag}-lag-${i}`);
  const batches = new Map(subjects.map((s) => [s, []]));
  const from = new Date(Math.floor(Date.now() / GRANULE_MS) * GRANULE_MS).toISOString();
  const flushes = new Map();
  const scanLog = () => {
    for (const line of gw.output().split("\n")) {
      const at = line.indexOf('{"msg":"snapshot flush"');
      if (at < 0) continue;
      try {
        const f = JSON.parse(line.slice(at));
        if (batches.has(f.subject)) flushes.set(`${f.subject}:${f.seq}`, f);
      } catch {
        // a line cut by the output buffer; read on an earlier scan
      }
    }
  };
  let seq = 0;
  let sending = true;
  const errors = [];
  const sender = async (subject, offset) => {
    await sleep(offset);
    let total = 0;
    for (const end = Date.now() + o.seconds * 1000; Date.now() < end; ) {
      const started = Date.now();
      const events = Array.from({ length: o.batch }, (_, i) => ({ specversion: "1.0", id: `${tag}-l-${seq++}`, source: "bench", type, subject, time: new Date().toISOString(), data: { n: 1, model: ["a", "b", "c"][i % 3] } }));
      try {
        const r = await api("POST", "/api/v1/events", events, 202);
        total += r.accepted;
        batches.get(subject).push({ total, ackAt: nowMs(), visibleAt: null });
      } catch (e) {
        // A failed request is reported with the figures; the batch is simply not tracked.
        errors.push(String(e).slice(0, 300));
      }
      await sleep(Math.max(0, o.everyMs - (Date.now() - started)));
    }
  };
  const poller = async () => {
    let giveUpAt = Infinity;
    for (;;) {
      const body = await api("GET", `/api/v1/meters/${slug}/query?groupBy=subject&from=${encodeURIComponent(from)}`);
      const at = nowMs();
      const totals = new Map(body.data.map((r) => [r.subject, r.value]));
      let waiting = 0;
      for (const [subject, list] of batches) {
        for (const b of list) {
          if (b.visibleAt === null && (totals.get(subject) ?? 0) >= b.total) b.visibleAt = at;
          if (b.visibleAt === null) waiting++;
        }
      }
      scanLog();
      if (!sending && giveUpAt === Infinity) giveUpAt = Date.now() + 2 * ctx.snapshotInterval * 1000 + 30_000;
      if (!sending && (waiting === 0 || Date.now() > giveUpAt)) return waiting;
      await sleep(250);
    }
  };
  const load = [ctx.loadAverage()];
  const polling = poller();
  const ticker = setInterval(() => ctx.progress(`s6 snapshot lag: ${sending ? "sending" : "waiting for the last flushes"}`), 2000);
  try {
    await Promise.all(subjects.map((s, i) => sender(s, Math.floor((i * o.everyMs) / subjects.length))));
  } finally {
    // Also on failure: the poller must not outlive this scenario (its gateway is stopped next).
    sending = false;
    clearInterval(ticker);
  }
  const unseen = await polling;
  await sleep(500);
  scanLog();
  load.push(ctx.loadAverage());

  const all = [...batches.values()].flat();
  const events = all.length * o.batch;
  const fl = [...flushes.values()];
  const rowsWritten = fl.reduce((n, f) => n + f.rowsWritten, 0);
  return {
    snapshotIntervalSeconds: ctx.snapshotInterval,
    traffic: { subjects: o.subjects, eventsPerBatch: o.batch, everyMs: o.everyMs, seconds: o.seconds },
    events,
    batches: all.length,
    unseenBatches: unseen,
    errors: errors.length,
    lastError: errors.at(-1),
    lagMs: summary(all.filter((b) => b.visibleAt !== null).map((b) => b.visibleAt - b.ackAt)),
    // Each subject's first batch found its Durable Object with nothing unflushed: interval + flush,
    // the worst case for a quiet customer.
    firstBatchLagMs: summary([...batches.values()].map((l) => l[0]).filter((b) => b?.visibleAt != null).map((b) => b.visibleAt - b.ackAt)),
    d1: {
      flushes: fl.length,
      rowsWritten,
      rowsWrittenPer1000Events: events ? round((rowsWritten / events) * 1000, 2) : null,
      statements: fl.reduce((n, f) => n + f.statements, 0),
      perFlush: fl.length ? { windows: round(sum(fl, "windows") / fl.length), rows: round(sum(fl, "rows") / fl.length), statements: round(sum(fl, "statements") / fl.length), rowsWritten: round(rowsWritten / fl.length), ms: round(sum(fl, "ms") / fl.length, 1), d1Ms: round(sum(fl, "d1Ms") / fl.length, 3) } : null,
      // D1 runs one query at a time: flushes per second one database could take at this flush's D1 time.
      flushesPerSecondPerDatabase: fl.length && sum(fl, "d1Ms") > 0 ? Math.floor(1000 / (sum(fl, "d1Ms") / fl.length)) : null,
    },
    loadAverage: load,
  };
}
