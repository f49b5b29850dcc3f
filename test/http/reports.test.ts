import { beforeAll, describe, expect, it } from "vitest";
import { GRANULE_MS, granuleOf } from "../../src/domain/rollup";
import { DAY, HOUR, MINUTE, api, createKey, createMeter, customerStub, event, expectProblem, ingestOk, iso, uid } from "../helpers/api";
import { rng } from "../helpers/rng";

// Namespace-wide answers (D1 snapshots) must equal each subject's exact answer (its Durable Object)
// once every Durable Object has flushed: for every aggregation, window size and time zone.

const AGGREGATIONS = ["SUM", "COUNT", "AVG", "MIN", "MAX", "LATEST", "UNIQUE_COUNT"] as const;
const SIZES = [undefined, "HOUR", "DAY", "MONTH"] as const;
// Kolkata (+5:30) and Kathmandu (+5:45) do not align with UTC hours; New York left DST inside the range.
const ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York"] as const;

let ns: string;
let key: string;
const slugs: Record<string, string> = {};
const subjects = [uid("acme"), uid("globex"), uid("initech"), uid("umbrella")];
const now = Date.now();
// Aligned to snapshot rows, so both answers cover exactly the same range.
const from = granuleOf(now - 33 * DAY);
const to = granuleOf(now) + GRANULE_MS;
const users = new Set<string>();

function makeEvents(subject: string, n: number, seed: number, lo: number, hi: number) {
  const r = rng(seed);
  const pick = <T,>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    // Multiples of 0.5 add up exactly in any order, so sums and averages compare with toEqual.
    const data: Record<string, unknown> = { tokens: Math.floor(r() * 200) / 2 - 20, region: pick(["eu", "us"]), user: pick(["u1", "u2", "u3", "u4", "u5", "u6", "u7"]) };
    // Some events lack a model: a null group-by value is a group of its own.
    if (r() < 0.85) data.model = pick(["gpt", "claude", "llama"]);
    users.add(data.user as string);
    out.push(event({ subject, type: "rep", time: iso(lo + Math.floor(r() * (hi - lo))), data }));
  }
  // Local midnights in Kolkata (18:30 UTC) and Kathmandu (18:15 UTC), one millisecond either side.
  const day = Math.floor((hi - 2 * DAY) / DAY) * DAY;
  for (const edge of [day + 18 * HOUR + 30 * MINUTE, day + 18 * HOUR + 15 * MINUTE]) {
    for (const t of [edge - 1, edge]) out.push(event({ subject, type: "rep", time: iso(t), data: { tokens: 3, region: "eu", model: "gpt", user: "edge" } }));
  }
  // The same instant under two models: LATEST must break the tie as the per-subject fold does.
  const tie = lo + 7 * HOUR + 123;
  out.push(event({ subject, type: "rep", time: iso(tie), data: { tokens: 5, region: "us", model: "gpt", user: "u1" } }));
  out.push(event({ subject, type: "rep", time: iso(tie), data: { tokens: 9, region: "us", model: "claude", user: "u2" } }));
  users.add("edge");
  return out;
}

async function flushAll(list: readonly string[] = subjects) {
  for (const subject of list) {
    const report = await customerStub(subject, ns).flushSnapshots({ namespace: ns, subject });
    expect(report?.applied, subject).toBe(true);
  }
}

async function get(path: string, params: Record<string, string | string[] | undefined>, headers: Record<string, string> = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of v === undefined ? [] : Array.isArray(v) ? v : [v]) qs.append(k, x);
  return api("GET", `${path}?${qs}`, { key, headers });
}

type Row = { value: number; windowStart: string; windowEnd: string; subject: string | null; groupBy: Record<string, string | null> };
const order = (a: Row, b: Row) => {
  const x = [a.windowStart, a.subject, JSON.stringify(a.groupBy)].join("|");
  const y = [b.windowStart, b.subject, JSON.stringify(b.groupBy)].join("|");
  return x < y ? -1 : x > y ? 1 : 0;
};

/** The D1 answer for the whole namespace and the Durable Objects' answer for all our subjects, same parameters. */
async function both(agg: string, params: Record<string, string | string[] | undefined>) {
  const path = `/api/v1/meters/${slugs[agg]}/query`;
  const base = { from: iso(from), to: iso(to), ...params };
  const wide = await get(path, base);
  expect(wide.status, wide.text).toBe(200);
  const exact = await get(path, { ...base, subject: subjects });
  expect(exact.status, exact.text).toBe(200);
  return { wide: wide.body, d1: [...(wide.body.data as Row[])].sort(order), dos: [...(exact.body.data as Row[])].sort(order) };
}

beforeAll(async () => {
  const created = await createKey({ scopes: ["admin", "read", "ingest"], namespace: uid("reports") });
  ns = created.namespace;
  key = created.key;
  for (const agg of AGGREGATIONS) {
    slugs[agg] = `rep_${agg.toLowerCase()}`;
    const valueProperty = agg === "COUNT" ? undefined : agg === "UNIQUE_COUNT" ? "$.user" : "$.tokens";
    await createMeter({ slug: slugs[agg], eventType: "rep", aggregation: agg, valueProperty, groupBy: { model: "$.model", region: "$.region" } }, key);
  }
  for (const [i, subject] of subjects.entries()) await ingestOk(makeEvents(subject, 150, i + 1, now - 32 * DAY, now - HOUR), { key });
  await flushAll();
});

describe("namespace-wide query equals the per-subject answers", () => {
  for (const agg of AGGREGATIONS) {
    it(`${agg}: every window size and zone, grouped by subject and model`, async () => {
      for (const windowSize of SIZES) {
        for (const windowTimeZone of ZONES) {
          if (!windowSize && windowTimeZone !== "UTC") continue;
          const { d1, dos } = await both(agg, { windowSize, windowTimeZone, groupBy: ["subject", "model"] });
          expect(dos.length, `${windowSize} ${windowTimeZone}`).toBeGreaterThan(0);
          expect(d1, `${agg} ${windowSize} ${windowTimeZone}`).toEqual(dos);
        }
      }
    });
  }

  it("with every group-by key, with none, and with filterGroupBy", async () => {
    for (const agg of AGGREGATIONS) {
      for (const params of [
        { windowSize: "DAY", groupBy: ["subject", "model", "region"] },
        { windowSize: "MONTH", windowTimeZone: "Asia/Kathmandu", groupBy: ["subject"] },
        { windowSize: "HOUR", windowTimeZone: "Asia/Kolkata", groupBy: ["subject", "model"], "filterGroupBy[region]": "eu" },
      ]) {
        const { d1, dos } = await both(agg, params);
        expect(d1, `${agg} ${JSON.stringify(params)}`).toEqual(dos);
      }
    }
  });

  it("still equal after late events into old windows, a new subject, and another flush", async () => {
    const late = uid("latecomer");
    await ingestOk([...makeEvents(subjects[0]!, 40, 99, now - 30 * DAY, now - 20 * DAY), ...makeEvents(subjects[2]!, 40, 98, now - 10 * DAY, now - DAY)], { key });
    await ingestOk(makeEvents(late, 30, 97, now - 25 * DAY, now - 2 * DAY), { key });
    subjects.push(late);
    await flushAll([subjects[0]!, subjects[2]!, late]);
    for (const agg of AGGREGATIONS) {
      for (const windowSize of SIZES) {
        const windowTimeZone = windowSize === "HOUR" ? "Asia/Kathmandu" : windowSize === "DAY" ? "America/New_York" : "Asia/Kolkata";
        const { d1, dos } = await both(agg, { windowSize, windowTimeZone, groupBy: ["subject", "model"] });
        expect(d1, `${agg} ${windowSize}`).toEqual(dos);
      }
    }
  });
});

describe("namespace-wide answers", () => {
  it("without groupBy=subject, folds subjects together: sums add, distinct counts take the union", async () => {
    const sum = await both("SUM", { windowSize: "DAY", groupBy: ["model"] });
    expect(sum.d1.every((r) => r.subject === null)).toBe(true);
    const expected = new Map<string, number>();
    for (const r of sum.dos) {
      const k = `${r.windowStart}|${JSON.stringify(r.groupBy)}`;
      expected.set(k, (expected.get(k) ?? 0) + r.value);
    }
    expect(new Map(sum.d1.map((r) => [`${r.windowStart}|${JSON.stringify(r.groupBy)}`, r.value]))).toEqual(expected);

    const uniq = await both("UNIQUE_COUNT", {});
    expect(uniq.d1).toHaveLength(1);
    expect(uniq.d1[0]!.value).toBe(users.size);
    expect(uniq.dos.reduce((n, r) => n + r.value, 0)).toBeGreaterThan(users.size);
  });

  it("says how fresh it is, in the body and (for CSV) in a header", async () => {
    const before = Date.now();
    const { wide } = await both("SUM", {});
    expect(wide.freshness).toMatchObject({ intervalSeconds: 30, pendingSubjects: 0, overdueSubjects: 0 });
    const completeBefore = Date.parse(wide.freshness.completeBefore);
    expect(completeBefore).toBeLessThanOrEqual(before - 40_000 + 1_000);
    expect(completeBefore).toBeGreaterThan(before - 60_000);
    const csv = await get(`/api/v1/meters/${slugs.SUM}/query`, {}, { accept: "text/csv" });
    expect(Date.parse(csv.headers.get("edgemeter-complete-before")!)).toBeGreaterThan(before - 60_000);
  });

  it("answers CSV that parses back to the JSON rows", async () => {
    const params = { from: iso(from), to: iso(to), windowSize: "DAY", windowTimeZone: "Asia/Kolkata", groupBy: ["subject", "model"] };
    const json = await get(`/api/v1/meters/${slugs.AVG}/query`, params);
    const csv = await get(`/api/v1/meters/${slugs.AVG}/query`, params, { accept: "text/csv" });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toContain("text/csv");
    const lines = csv.text.trimEnd().split("\r\n");
    expect(lines[0]).toBe("window_start,window_end,subject,model,value");
    const parsed = lines.slice(1).map((l) => {
      const [windowStart, windowEnd, subject, model, value] = l.split(",");
      return { windowStart, windowEnd, subject, groupBy: { model: model === "" ? null : model }, value: Number(value) };
    });
    expect(parsed).toEqual(json.body.data.map((r: Row) => ({ windowStart: r.windowStart, windowEnd: r.windowEnd, subject: r.subject, groupBy: r.groupBy, value: r.value })));
    expect(parsed.length).toBeGreaterThan(20);
  });

  it("widens from/to to the 15-minute rows and echoes the range it answered", async () => {
    const res = await get(`/api/v1/meters/${slugs.COUNT}/query`, { from: iso(from + 7 * MINUTE), to: iso(to - 14 * MINUTE) });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ from: iso(from), to: iso(to) });
  });

  it("refuses MINUTE windows and unknown group-by keys with a clear 400", async () => {
    const minute = await get(`/api/v1/meters/${slugs.SUM}/query`, { windowSize: "MINUTE" });
    expectProblem(minute, 400, "validation_failed");
    expect(minute.body.detail).toMatch(/MINUTE windows are answered per subject only/);
    expectProblem(await get(`/api/v1/meters/${slugs.SUM}/query`, { groupBy: "colour" }), 400, "validation_failed");
    expectProblem(await get(`/api/v1/meters/nope/query`, {}), 404, "not_found");
  });

  it("POST without subject answers from D1 too", async () => {
    const res = await api("POST", `/api/v1/meters/${slugs.COUNT}/query`, { key, body: { from: iso(from), to: iso(to), groupBy: ["subject"] } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.freshness).toBeDefined();
    expect(res.body.data.map((r: Row) => r.subject).sort()).toEqual([...subjects].sort());
  });

  it("another namespace sees none of it", async () => {
    const other = await createKey({ scopes: ["admin", "read", "ingest"], namespace: uid("elsewhere") });
    await createMeter({ slug: slugs.SUM!, eventType: "rep", aggregation: "SUM", valueProperty: "$.tokens" }, other.key);
    const res = await api("GET", `/api/v1/meters/${slugs.SUM}/query`, { key: other.key });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual([]);
    expect((await api("GET", `/api/v1/meters/${slugs.SUM}/subjects`, { key: other.key })).body).toEqual([]);
  });
});

describe("meter subjects and group-by values (OpenMeter v1)", () => {
  it("lists the subjects with usage, optionally within from/to", async () => {
    const res = await get(`/api/v1/meters/${slugs.SUM}/subjects`, {});
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual([...subjects].sort());
    expect((await get(`/api/v1/meters/${slugs.SUM}/subjects`, { to: iso(from - DAY) })).body).toEqual([]);
  });

  it("lists a group-by key's values, by default over the last 24 hours", async () => {
    const all = await get(`/api/v1/meters/${slugs.SUM}/group-by/model/values`, { from: iso(from) });
    expect(all.status, all.text).toBe(200);
    expect(all.body).toEqual(["claude", "gpt", "llama"]);
    expect((await get(`/api/v1/meters/${slugs.SUM}/group-by/region/values`, { from: iso(from) })).body).toEqual(["eu", "us"]);
    expect((await get(`/api/v1/meters/${slugs.SUM}/group-by/subject/values`, { from: iso(from) })).body).toEqual([...subjects].sort());
    expectProblem(await get(`/api/v1/meters/${slugs.SUM}/group-by/colour/values`, {}), 400, "validation_failed");
  });

  it("are documented in /openapi.json", async () => {
    const doc = (await api("GET", "/openapi.json")).body;
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/v1/meters/{meterIdOrSlug}/subjects", "/api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values"]));
    expect(doc.components.schemas.MeterQueryResult.properties.freshness).toBeDefined();
  });
});
