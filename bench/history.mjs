#!/usr/bin/env node
// What an entitlement history costs (GET …/entitlements/{id}/history), on a fresh `npm run serve`
// gateway: 29 days of usage of a 5-group meter (5 events every 10 minutes: 720 a day, 20,880 in all)
// and 10 grants of 2 days each, then the history of the whole period in HOUR and DAY windows and
// 16 hours in MINUTE windows, each asked twice (the second answer is warm). Prints the latency of
// each request and the windows and burn-down segments it answered.
//
//   npx node bench/history.mjs [--aggregation SUM|COUNT|UNIQUE_COUNT|LATEST]
import { parseArgs } from "node:util";
import { startGateway } from "../test/e2e/harness.mjs";

const { values: args } = parseArgs({ options: { aggregation: { type: "string", default: "SUM" } } });
const DAY = 86_400_000;
const gw = await startGateway({ runtime: "serve" });
const headers = { authorization: `Bearer ${gw.adminKey}`, "content-type": "application/json" };
async function call(method, path, body) {
  const res = await fetch(gw.baseUrl + path, { method, headers, body: body && JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}
const iso = (ms) => new Date(ms).toISOString();

try {
  const aggregation = args.aggregation;
  await call("POST", "/api/v1/meters", { slug: "tok", eventType: "tok", aggregation, ...(aggregation === "COUNT" ? {} : { valueProperty: "$.tokens" }), groupBy: { model: "$.model" } });
  await call("POST", "/api/v1/features", { key: "tok", name: "tok", meterSlug: "tok" });
  const now = Date.now();
  const start = now - 29 * DAY;
  await call("POST", "/api/v1/subjects/c1/entitlements", { type: "metered", featureKey: "tok", usagePeriod: { interval: "MONTH", anchor: iso(start) }, measureUsageFrom: iso(start), issueAfterReset: 1e6 });
  for (let d = 0; d < 29; d++) {
    const events = Array.from({ length: 720 }, (_, i) => ({
      specversion: "1.0",
      id: `e-${d}-${i}`,
      source: "bench",
      type: "tok",
      subject: "c1",
      time: iso(start + d * DAY + Math.floor(i / 5) * 600_000 + (i % 5) * 1000),
      data: { tokens: 1 + (i % 7), model: ["a", "b", "c", "d", "e"][i % 5] },
    }));
    await call("POST", "/api/v1/events", events);
  }
  for (let g = 0; g < 10; g++) {
    await call("POST", "/api/v1/subjects/c1/entitlements/tok/grants", { amount: 100, priority: 1 + g, effectiveAt: iso(start + (g * 3 + 1) * DAY), expiration: { duration: "DAY", count: 2 } });
  }
  console.log(`history of a ${aggregation} entitlement, 29 days, 20,880 events, 10 grants (npm run serve)`);
  for (const [windowSize, from] of [["HOUR", start], ["HOUR", start], ["DAY", start], ["DAY", start], ["MINUTE", now - 16 * 3_600_000], ["MINUTE", now - 16 * 3_600_000]]) {
    const t0 = performance.now();
    const h = await call("GET", `/api/v1/subjects/c1/entitlements/tok/history?windowSize=${windowSize}&from=${iso(from)}`);
    const ms = performance.now() - t0;
    console.log(`${windowSize.padEnd(6)} ${ms.toFixed(1).padStart(7)} ms · ${h.windowedHistory.length} windows with usage · ${h.burndownHistory.length} segments`);
  }
} finally {
  await gw.cleanup();
}
