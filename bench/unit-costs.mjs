#!/usr/bin/env node
// What single steps of a quota check cost inside workerd, measured rather than read off a V8
// profile (which overstates small functions on the request path: docs/performance.md). A fresh
// `npm run serve` gateway runs each step n times in one request (GET /bench/repeat, on with
// BENCH_PARSE_ONLY); the time of that request minus the time of the
// same request with n = 1, divided by n, is one step. workerd's clock stands still while JavaScript
// runs, so the timing is taken here, outside. Each step awaits its result, as the request path does.
// Then each step once per request, over --requests interleaved requests: its median request time less
// the median of a request that only awaits a resolved promise, which adds whatever a step costs the
// first time in a request (and what a loop amortises).
//
//   npx node bench/unit-costs.mjs [--n 20000] [--rounds 5] [--requests 3000]
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/harness.mjs";
import { load1, round } from "./lib.mjs";

const { values: args } = parseArgs({ options: { n: { type: "string", default: "20000" }, rounds: { type: "string", default: "5" }, requests: { type: "string", default: "3000" } } });
const n = Number(args.n);
const rounds = Number(args.rounds);
const requests = Number(args.requests);
const UNITS = {
  resolved: "await of a resolved promise (the loop's floor)",
  json: "JSON.parse of a check's body, through the body gate's parseJson",
  inspect: "inspectJson of it (the body gate's shape check)",
  zod: "the check route's zod schema (safeParseAsync, as the route validator calls it)",
  digest: "SHA-256 of an API key (crypto.subtle.digest)",
};

const gw = await startGateway({ runtime: "serve", env: { BENCH_PARSE_ONLY: "true" } });
try {
  const time = async (what, times) => {
    const started = performance.now();
    const res = await fetch(`${gw.baseUrl}/bench/repeat?what=${what}&n=${times}`);
    if (res.status !== 200) throw new Error(`${what}: ${res.status} ${await res.text()}`);
    await res.text();
    return performance.now() - started;
  };
  const before = load1();
  const results = {};
  for (const what of Object.keys(UNITS)) {
    await time(what, n); // warm-up: the JIT has compiled the loop before it is timed
    const each = [];
    for (let r = 0; r < rounds; r++) each.push(((await time(what, n)) - (await time(what, 1))) * 1000 / n);
    each.sort((a, b) => a - b);
    results[what] = { what: UNITS[what], medianMicros: round(each[Math.floor(each.length / 2)], 3), minMicros: round(each[0], 3), maxMicros: round(each.at(-1), 3) };
    process.stderr.write(".");
  }
  // Once per request, interleaved so that drift in the machine's load hits every step alike.
  const once = Object.fromEntries(Object.keys(UNITS).map((w) => [w, []]));
  for (let i = 0; i < requests; i++) for (const what of Object.keys(UNITS)) once[what].push(await time(what, 1));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const what of Object.keys(UNITS)) results[what].oncePerRequestMicros = round((median(once[what]) - median(once.resolved)) * 1000, 1);
  process.stderr.write("\n");
  console.log(`µs per step inside workerd: ${n} in one request (median of ${rounds}, range), and once per request beyond a bare request (${requests} requests; load average ${before} → ${load1()})\n`);
  for (const [what, r] of Object.entries(results)) console.log(`${what.padEnd(10)}${String(r.medianMicros).padStart(9)}  (${r.minMicros}–${r.maxMicros})${String(r.oncePerRequestMicros).padStart(9)}  ${r.what}`);
  const dir = path.join(import.meta.dirname, "results");
  mkdirSync(dir, { recursive: true });
  const when = new Date().toISOString();
  const file = path.join(dir, `unit-costs-${when.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify({ when, command: `npx node bench/unit-costs.mjs --n ${n} --rounds ${rounds} --requests ${requests}`, loadAverage: [before, load1()], results }, null, 2) + "\n");
  console.log(`\nsaved ${path.relative(process.cwd(), file)}`);
} finally {
  await gw.cleanup();
}
