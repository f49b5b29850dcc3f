#!/usr/bin/env node
// The load generator of `npm run bench`, in its own process (forked by bench/run.mjs) so that the
// orchestrator's webhook receiver and bookkeeping never share an event loop with the load.
// Commands arrive as IPC messages; progress and results go back the same way.
//
//   { cmd: "ingest", ... }   closed loop: C connections (keep-alive), each sending its next request
//                            as soon as the previous one answered, for warmup + seconds. Every event
//                            has a unique id, except the share `dupRate` re-sent from earlier requests.
//                            Ids are ordered per connection (`<tag>-<conn>-<zero-padded counter>`, like
//                            ULIDs or UUIDv7), or random UUIDv4 with `ids: "uuid"` (README "Performance":
//                            why the difference is large).
//   { cmd: "latency", ... }  sequential requests of several kinds, interleaved round-robin, so every
//                            kind sees the same conditions (what bench/latency.mjs did on its own).
//
// Throughput counts the requests that completed inside the measured window; latency is measured per
// request from the first byte written to the last byte read.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { groupCpuMs, load1, storageCalls, summary } from "./lib.mjs";

const MODELS = ["gpt-4o", "o3", "claude", "llama"];

function client(baseUrl, connections) {
  const url = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  /** One request; resolves { status, body } (body as text). Never rejects: failures are status 0. */
  const send = (method, path, headers, body) =>
    new Promise((resolve) => {
      const req = http.request({ agent, host: url.hostname, port: url.port, method, path, headers }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
        res.on("error", (e) => resolve({ status: 0, body: String(e) }));
      });
      req.on("error", (e) => resolve({ status: 0, body: String(e) }));
      req.end(body);
    });
  // Closed after each run: idle keep-alive sockets of earlier runs would otherwise pile up on the gateway.
  send.close = () => agent.destroy();
  return send;
}

// Built as text: JSON.stringify of 1,000 objects per request would make the generator, which shares
// the 2 cores with the gateway, the bottleneck sooner.
const eventJson = (id, subject, type, time, tokens, model) =>
  `{"specversion":"1.0","id":"${id}","source":"bench","type":"${type}","subject":"${subject}","time":"${time}","data":{"tokens":${tokens},"model":"${model}"}}`;

async function ingest(o) {
  if (o.dupRate > 0 && o.subjects !== 1) throw new Error("duplicates are re-sent to the same subject: use one subject");
  const send = client(o.baseUrl, o.connections);
  const headers = { authorization: `Bearer ${o.adminKey}`, "content-type": "application/cloudevents-batch+json" };
  let errors = 0;
  let primeErrors = 0;
  let lastError = "";
  if (o.prime) {
    // A read to every subject first, so that the run starts with each Durable Object awake and
    // steady traffic to existing customers is what is measured. A read, not an event: an event
    // would make every subject's snapshot flush due one interval later, all at once, and that wave
    // landed inside the measured window or not depending on how long priming took (the 1,000-subject
    // figure flipped between 29% and 92%). Their first write (subject registration) was made when the
    // scenario created their entitlements.
    let next = 0;
    const primer = async () => {
      for (let k = next++; k < o.subjects; k = next++) {
        const res = await send("GET", `/api/v1/events?subject=${encodeURIComponent(`${o.subjectPrefix}-${k}`)}&limit=1`, { authorization: headers.authorization });
        if (res.status !== 200) {
          primeErrors++;
          lastError = `priming ${o.subjectPrefix}-${k}: ${res.status} ${res.body.slice(0, 300)}`;
        }
      }
    };
    await Promise.all(Array.from({ length: o.connections }, primer));
  }
  const t0 = performance.now();
  const start = t0 + o.warmupSeconds * 1000;
  const end = start + o.seconds * 1000;
  const done = []; // [finishedAt, ms, events, accepted, duplicates] of requests finished in the window
  // Every answered request, warm-up included: what the gateway's counters saw.
  const all = { requests: 0, events: 0, accepted: 0, duplicates: 0 };
  let requestSeq = 0;
  let cpuStart = null;
  let cpuAtStart = null;
  const ownCpuStart = process.cpuUsage();

  const progress = setInterval(() => {
    const now = performance.now();
    const measured = done.filter((d) => d[0] >= start);
    process.send?.({ type: "progress", phase: now < start ? "warm-up" : "measuring", elapsed: (now - t0) / 1000, total: (end - t0) / 1000, events: measured.reduce((n, d) => n + d[2], 0), seconds: Math.max(0, (Math.min(now, end) - start) / 1000), errors });
  }, 1000);
  let calls = null;
  const cpuTimer = setTimeout(() => {
    cpuStart = performance.now();
    cpuAtStart = groupCpuMs(o.pgid);
    calls = storageCalls(o.pgid);
  }, Math.max(0, start - performance.now()));

  async function worker(w) {
    const history = []; // event JSON sent earlier by this connection, for re-sends
    let seq = 0;
    let owed = 0;
    while (performance.now() < end) {
      const k = requestSeq++;
      const subject = o.subjects === 1 ? `${o.subjectPrefix}-0` : `${o.subjectPrefix}-${k % o.subjects}`;
      const time = new Date().toISOString();
      owed += o.batch * o.dupRate;
      const dups = Math.min(Math.floor(owed), history.length, o.batch);
      owed -= dups;
      const parts = [];
      for (let i = 0; i < dups; i++) parts.push(history[Math.floor(Math.random() * history.length)]);
      for (let i = parts.length; i < o.batch; i++) {
        const e = eventJson(o.ids === "uuid" ? randomUUID() : `${o.tag}-${w}-${String(seq).padStart(10, "0")}`, subject, o.type, time, 1 + (seq++ % 100), MODELS[seq % MODELS.length]);
        parts.push(e);
        if (o.dupRate > 0) {
          if (history.length < 10_000) history.push(e);
          else history[seq % 10_000] = e;
        }
      }
      const body = `[${parts.join(",")}]`;
      const began = performance.now();
      const res = await send("POST", o.path, { ...headers, "content-length": Buffer.byteLength(body) }, body);
      const finished = performance.now();
      if (res.status !== 202) {
        errors++;
        lastError = `${res.status} ${res.body.slice(0, 300)}`;
        continue;
      }
      let accepted = 0;
      let duplicates = 0;
      if (o.path === "/api/v1/events") ({ accepted, duplicates } = JSON.parse(res.body));
      all.requests++;
      all.events += o.batch;
      all.accepted += accepted;
      all.duplicates += duplicates;
      if (finished >= start && finished <= end) done.push([finished, finished - began, o.batch, accepted, duplicates]);
    }
  }

  const load = [load1()];
  await Promise.all(Array.from({ length: o.connections }, (_, w) => worker(w)));
  send.close();
  clearInterval(progress);
  clearTimeout(cpuTimer);
  load.push(load1());
  let cpuEnd = groupCpuMs(o.pgid);
  const storage = (await calls?.stop()) ?? null;
  // Less than at the start: a process of the gateway restarted (wrangler dev reloads when a source
  // file changes), so the figure would be meaningless.
  if (cpuEnd !== null && cpuAtStart !== null && cpuEnd < cpuAtStart) cpuEnd = null;
  const own = process.cpuUsage(ownCpuStart);
  const seconds = o.seconds;
  const events = done.reduce((n, d) => n + d[2], 0);
  const requests = done.length;
  return {
    requests,
    events,
    requestsPerSecond: Math.round(requests / seconds),
    eventsPerSecond: Math.round(events / seconds),
    latencyMs: summary(done.map((d) => d[1])),
    accepted: done.reduce((n, d) => n + d[3], 0),
    duplicates: done.reduce((n, d) => n + d[4], 0),
    errors,
    primeErrors,
    lastError: lastError || undefined,
    whole: all,
    gatewayCpuMsPerRequest: cpuAtStart === null || cpuEnd === null || requests === 0 ? null : +((cpuEnd - cpuAtStart) / requests).toFixed(3),
    gatewayCpuUsPerEvent: cpuAtStart === null || cpuEnd === null || events === 0 ? null : +(((cpuEnd - cpuAtStart) * 1000) / events).toFixed(2),
    gatewayCpuCores: cpuAtStart === null || cpuEnd === null ? null : +((cpuEnd - cpuAtStart) / (performance.now() - cpuStart)).toFixed(2),
    // fsyncs and page reads (pread) of the gateway's workerd in the window, per request answered in it (null without perf).
    storageSyncsPerRequest: storage === null || requests === 0 ? null : +(storage.syncs / requests).toFixed(3),
    pageReadsPerRequest: storage === null || requests === 0 ? null : +(storage.reads / requests).toFixed(1),
    loadGeneratorCpuCores: +((own.user + own.system) / 1000 / (performance.now() - t0)).toFixed(2),
    loadAverage: load,
  };
}

async function latency(o) {
  const send = client(o.baseUrl, 1);
  const auth = { authorization: `Bearer ${o.adminKey}` };
  const json = { ...auth, "content-type": "application/json" };
  let seq = 0;
  const call = async (method, path, headers, body, expect = 200) => {
    const res = await send(method, path, body === undefined ? headers : { ...headers, "content-length": Buffer.byteLength(body) }, body);
    if (res.status !== expect) throw new Error(`${method} ${path} → ${res.status} ${res.body.slice(0, 300)}`);
    return res.body;
  };
  const kinds = {
    "GET /healthz (Worker only)": () => call("GET", "/healthz", {}),
    "GET /healthz/do (no-op DO RPC)": () => call("GET", "/healthz/do", {}),
    // Decide only: what a quota gate costs when it asks without recording (a read in the DO).
    "POST /api/v1/check (decide only)": async () => {
      const r = JSON.parse(await call("POST", "/api/v1/check", json, JSON.stringify({ subject: o.subject, feature: o.feature, amount: 1 })));
      if (!r.allowed) throw new Error("check refused");
    },
    "POST /api/v1/check (+event)": async () => {
      const event = { specversion: "1.0", id: `${o.tag}-c-${seq++}`, source: "bench", type: o.type, subject: o.subject, data: { tokens: 1, model: "o3" } };
      const r = JSON.parse(await call("POST", "/api/v1/check", json, JSON.stringify({ subject: o.subject, feature: o.feature, event })));
      if (!r.allowed) throw new Error("check refused");
    },
    "GET …/entitlements/{feature}/value": () => call("GET", `/api/v1/subjects/${o.subject}/entitlements/${o.feature}/value`, auth),
    "POST /api/v1/events (1 event)": () =>
      call("POST", "/api/v1/events", json, eventJson(`${o.tag}-i-${seq++}`, o.subject, o.type, new Date().toISOString(), 1, "o3"), 202),
    // bench/check-anatomy.mjs: a check taken apart (src/http/debug.ts, on with BENCH_PARSE_ONLY).
    ...(o.anatomy
      ? {
          "GET /bench/authenticated": () => call("GET", "/bench/authenticated", auth),
          "POST /bench/authenticated (a check's body)": () => call("POST", "/bench/authenticated", json, JSON.stringify({ subject: o.subject, feature: o.feature, amount: 1 })),
          "GET /bench/check-rpc (decide only)": () => call("GET", `/bench/check-rpc?subject=${encodeURIComponent(o.subject)}&feature=${encodeURIComponent(o.feature)}`, {}),
        }
      : {}),
  };
  // `only`: a substring, or a list of them, of the kinds to run (bench/profile.mjs --latency check).
  const only = [].concat(o.only ?? []);
  const names = Object.keys(kinds).filter((k) => only.length === 0 || only.some((x) => k.includes(x)));
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  const load = [load1()];
  for (let i = 0; i < o.warmup; i++) for (const k of names) await kinds[k]();
  for (let i = 0; i < o.rounds; i++) {
    for (const k of names) {
      const t = performance.now();
      await kinds[k]();
      samples[k].push(performance.now() - t);
    }
    if (i % 50 === 49) process.send?.({ type: "progress", phase: "measuring", done: i + 1, total: o.rounds });
  }
  load.push(load1());
  send.close();
  return { rounds: o.rounds, warmup: o.warmup, results: Object.fromEntries(names.map((k) => [k, summary(samples[k])])), loadAverage: load };
}

process.on("message", async (msg) => {
  if (msg.cmd === "exit") process.exit(0);
  try {
    const result = msg.cmd === "ingest" ? await ingest(msg) : msg.cmd === "latency" ? await latency(msg) : null;
    if (result === null) throw new Error(`unknown command ${msg.cmd}`);
    process.send({ type: "result", result });
  } catch (e) {
    process.send({ type: "error", error: String(e?.stack ?? e) });
  }
});
// The orchestrator owns this process: if it goes away, so does the load.
process.on("disconnect", () => process.exit(0));
