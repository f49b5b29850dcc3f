#!/usr/bin/env node
// Snapshot lag and D1 write cost, against a running gateway (scripts/start.mjs → wrangler dev → workerd)
// with SNAPSHOT_INTERVAL_SECONDS at its default (30) unless --interval says otherwise.
//
//   node bench/snapshot-lag.mjs [--subjects 8] [--batch 50] [--every-ms 1000] [--seconds 90] [--interval 30]
//
// Steady traffic: each subject sends a batch of --batch events (value 1, three group-by values) every
// --every-ms for --seconds. A poller asks the namespace-wide query (D1, grouped by subject) every 250 ms.
//   lag          time from a batch's 2xx to the first poll whose total for that subject includes it.
//   first batch  the same for each subject's first batch: its Durable Object had nothing unflushed,
//                so this is the interval plus the flush, the worst case for a quiet customer.
//   rows/1k      D1 rows written (meta.rows_written summed by each flush, read from its log line)
//                per 1,000 events ingested.
// A fresh gateway is started on a free port with a temp state dir (test/e2e/harness.mjs) and stopped at
// the end. Figures are printed and saved to bench/results/snapshot-lag-<time>.json.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway } from "../test/e2e/harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const GRANULE_MS = 15 * 60_000;

function args(argv) {
  const out = { subjects: 8, batch: 50, everyMs: 1000, seconds: 90, interval: undefined };
  const names = { "--subjects": "subjects", "--batch": "batch", "--every-ms": "everyMs", "--seconds": "seconds", "--interval": "interval" };
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i]];
    if (!key) throw new Error(`unknown argument ${argv[i]}`);
    out[key] = Number(argv[++i]);
    if (!(out[key] >= 0)) throw new Error(`${argv[i - 1]} needs a number`);
  }
  return out;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
function summary(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const r = (x) => Math.round(x) / 1000;
  return { n: s.length, p50: r(percentile(s, 50)), p90: r(percentile(s, 90)), p99: r(percentile(s, 99)), mean: r(s.reduce((a, b) => a + b, 0) / s.length), max: r(s[s.length - 1]) };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const opts = args(process.argv.slice(2));
  const env = opts.interval === undefined ? {} : { SNAPSHOT_INTERVAL_SECONDS: String(opts.interval) };
  const gw = await startGateway({ env });
  const flushes = new Map(); // `${subject}:${seq}` → flush report, from the gateway's log lines
  const scanLog = () => {
    for (const line of gw.output().split("\n")) {
      const at = line.indexOf('{"msg":"snapshot flush"');
      if (at < 0) continue;
      try {
        const f = JSON.parse(line.slice(at));
        flushes.set(`${f.subject}:${f.seq}`, f);
      } catch {
        // A line cut by the log buffer; its flush was read on an earlier scan.
      }
    }
  };

  async function call(method, p, body) {
    const res = await gw.fetch(p, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p} → ${res.status} ${text}`);
    return { at: Date.now(), body: text ? JSON.parse(text) : undefined };
  }

  try {
    const tag = Date.now().toString(36);
    const slug = `lag_${tag}`;
    await call("POST", "/api/v1/meters", { slug, eventType: `lag_${tag}`, aggregation: "SUM", valueProperty: "$.n", groupBy: { model: "$.model" } });
    const subjects = Array.from({ length: opts.subjects }, (_, i) => `lag-${tag}-${i}`);
    const batches = new Map(subjects.map((s) => [s, []])); // per subject: { total after it, ackAt, visibleAt }
    const from = new Date(Math.floor(Date.now() / GRANULE_MS) * GRANULE_MS).toISOString();
    let seq = 0;
    let sending = true;

    const sender = async (subject, offset) => {
      await sleep(offset);
      let total = 0;
      for (const end = Date.now() + opts.seconds * 1000; Date.now() < end; ) {
        const started = Date.now();
        const events = Array.from({ length: opts.batch }, (_, i) => ({
          specversion: "1.0",
          id: `${tag}-${seq++}`,
          source: "bench",
          type: `lag_${tag}`,
          subject,
          time: new Date().toISOString(),
          data: { n: 1, model: ["a", "b", "c"][i % 3] },
        }));
        const { at, body } = await call("POST", "/api/v1/events", events);
        total += body.accepted;
        batches.get(subject).push({ total, ackAt: at, visibleAt: null });
        await sleep(Math.max(0, opts.everyMs - (Date.now() - started)));
      }
    };

    const poller = async () => {
      let giveUpAt = Infinity;
      for (;;) {
        const { at, body } = await call("GET", `/api/v1/meters/${slug}/query?groupBy=subject&from=${encodeURIComponent(from)}`);
        const totals = new Map(body.data.map((r) => [r.subject, r.value]));
        let waiting = 0;
        for (const [subject, list] of batches) {
          for (const b of list) {
            if (b.visibleAt === null && (totals.get(subject) ?? 0) >= b.total) b.visibleAt = at;
            if (b.visibleAt === null) waiting++;
          }
        }
        scanLog();
        if (!sending && giveUpAt === Infinity) giveUpAt = Date.now() + 2 * (opts.interval ?? 30) * 1000 + 30_000;
        if (!sending && (waiting === 0 || Date.now() > giveUpAt)) return waiting;
        await sleep(250);
      }
    };

    const polling = poller();
    await Promise.all(subjects.map((s, i) => sender(s, Math.floor((i * opts.everyMs) / subjects.length))));
    sending = false;
    const unseen = await polling;
    await sleep(500);
    scanLog();

    const all = [...batches.values()].flat();
    const seen = all.filter((b) => b.visibleAt !== null);
    const events = all.length * opts.batch;
    const fl = [...flushes.values()].filter((f) => subjects.includes(f.subject));
    const rowsWritten = fl.reduce((n, f) => n + f.rowsWritten, 0);
    const result = {
      at: new Date().toISOString(),
      options: { ...opts, interval: opts.interval ?? "default (30)" },
      events,
      batches: all.length,
      unseenBatches: unseen,
      lagSeconds: summary(seen.map((b) => b.visibleAt - b.ackAt)),
      firstBatchLagSeconds: summary([...batches.values()].map((l) => l[0]).filter((b) => b?.visibleAt != null).map((b) => b.visibleAt - b.ackAt)),
      d1: {
        flushes: fl.length,
        rowsWritten,
        rowsWrittenPer1000Events: Math.round((rowsWritten / events) * 1000 * 100) / 100,
        perFlush: fl.length ? { windows: +(fl.reduce((n, f) => n + f.windows, 0) / fl.length).toFixed(2), rows: +(fl.reduce((n, f) => n + f.rows, 0) / fl.length).toFixed(2), statements: +(fl.reduce((n, f) => n + f.statements, 0) / fl.length).toFixed(2), rowsWritten: +(rowsWritten / fl.length).toFixed(2), ms: +(fl.reduce((n, f) => n + f.ms, 0) / fl.length).toFixed(1) } : null,
      },
    };
    console.log(JSON.stringify(result, null, 2));
    mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
    const file = path.join(ROOT, "bench", "results", `snapshot-lag-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2));
    console.log(`saved ${path.relative(ROOT, file)}`);
  } finally {
    await gw.cleanup();
  }
}

await main();
