import { beforeAll, describe, expect, it } from "vitest";
import { api, createKey, createMeter, customerStub, event, expectProblem, ingestOk, uid } from "../helpers/api";

// OpenMeter's meter-query filters: advancedMeterGroupByFilters (FilterString) and filterGroupBy with
// lists. Per subject they run over the Durable Object's buckets (JavaScript), namespace-wide over D1's
// snapshot rows (SQL): both must give the hand-computed answers below.

// Each model's tokens are a distinct power of two, so a total names exactly the models it includes.
const MODELS: Record<string, number> = {
  "gpt-4": 1,
  "gpt-4o": 2,
  "GPT-4o-mini": 4,
  claude: 8,
  llama_3: 16,
  llamaX3: 32,
  "a%b": 64,
  ärger: 128,
  Ärger: 256,
  "😀x": 512,
  "\uFF01": 1024,
};
const NO_MODEL = 2048;
const ALL = Object.values(MODELS).reduce((a, b) => a + b, 0) + NO_MODEL;
const sumOf = (...models: string[]) => models.reduce((a, m) => a + (m === "(none)" ? NO_MODEL : MODELS[m]!), 0);

let key: string;
let ns: string;
const slug = uid("flt");
const subjects = [uid("fa"), uid("fb")];

async function query(method: "GET" | "POST", params: Record<string, unknown>, withSubjects = true) {
  const path = `/api/v1/meters/${slug}/query`;
  if (method === "POST") return api("POST", path, { key, body: withSubjects ? { ...params, subject: subjects } : params });
  const qs = new URLSearchParams();
  if (withSubjects) for (const s of subjects) qs.append("subject", s);
  for (const [k, v] of Object.entries(params)) {
    for (const x of Array.isArray(v) ? v : [v]) qs.append(k, typeof x === "string" ? x : JSON.stringify(x));
  }
  return api("GET", `${path}?${qs}`, { key });
}

async function totalOf(method: "GET" | "POST", params: Record<string, unknown>, withSubjects = true): Promise<number> {
  const res = await query(method, params, withSubjects);
  expect(res.status, res.text).toBe(200);
  return (res.body.data as { value: number }[]).reduce((a, r) => a + r.value, 0);
}

beforeAll(async () => {
  const created = await createKey({ scopes: ["admin", "read", "ingest"], namespace: uid("filters") });
  key = created.key;
  ns = created.namespace;
  await createMeter({ slug, eventType: "flt", aggregation: "SUM", valueProperty: "$.tokens", groupBy: { model: "$.model", region: "$.region" } }, key);
  // Each subject sends half of every model's tokens, in one region each.
  for (const [i, subject] of subjects.entries()) {
    const region = i === 0 ? "eu" : "us";
    const events = Object.entries(MODELS).map(([model, tokens]) => event({ subject, type: "flt", data: { tokens: tokens / 2, model, region } }));
    events.push(event({ subject, type: "flt", data: { tokens: NO_MODEL / 2, region } }));
    await ingestOk(events, { key });
    const report = await customerStub(subject, ns).flushSnapshots({ namespace: ns, subject });
    expect(report?.applied).toBe(true);
  }
});

const CASES: [name: string, filter: unknown, expected: number][] = [
  ["$eq", { $eq: "gpt-4" }, sumOf("gpt-4")],
  ["$ne keeps events without the key", { $ne: "gpt-4" }, ALL - sumOf("gpt-4")],
  ["$in", { $in: ["claude", "gpt-4o", "nope"] }, sumOf("claude", "gpt-4o")],
  ["$nin keeps events without the key", { $nin: ["claude", "gpt-4o"] }, ALL - sumOf("claude", "gpt-4o")],
  ["$like is case-sensitive", { $like: "gpt-4%" }, sumOf("gpt-4", "gpt-4o")],
  ["$ilike folds ASCII case", { $ilike: "gpt-4%" }, sumOf("gpt-4", "gpt-4o", "GPT-4o-mini")],
  ["$ilike does not fold non-ASCII letters (SQLite)", { $ilike: "ärger" }, sumOf("ärger")],
  ["$like _ is one character", { $like: "llama_3" }, sumOf("llama_3", "llamaX3")],
  ["$like \\ escapes _", { $like: "llama\\_3" }, sumOf("llama_3")],
  ["$like \\ escapes %", { $like: "a\\%b" }, sumOf("a%b")],
  ["$like _ is one code point", { $like: "_x" }, sumOf("😀x")],
  ["$like with a trailing escape matches nothing", { $like: "gpt-4\\" }, 0],
  ["$nlike keeps events without the key", { $nlike: "%4%" }, ALL - sumOf("gpt-4", "gpt-4o", "GPT-4o-mini")],
  ["$nilike folds ASCII case", { $nilike: "%A%" }, sumOf("gpt-4", "gpt-4o", "GPT-4o-mini", "ärger", "Ärger", "😀x", "\uFF01", "(none)")],
  // Code point order: GPT-4o-mini < a%b < claude < gpt-4 < gpt-4o < llamaX3 < llama_3 < Ärger < ärger < U+FF01 < 😀x.
  ["$gt", { $gt: "llama_3" }, sumOf("Ärger", "ärger", "\uFF01", "😀x")],
  ["$gt compares code points, as SQLite does (UTF-16 puts 😀 before U+FF01)", { $gt: "\uFF01" }, sumOf("😀x")],
  ["$gte", { $gte: "gpt-4o" }, sumOf("gpt-4o", "llama_3", "llamaX3", "ärger", "Ärger", "\uFF01", "😀x")],
  ["$lt", { $lt: "a%c" }, sumOf("GPT-4o-mini", "a%b")],
  ["$lte", { $lte: "GPT-4o-mini" }, sumOf("GPT-4o-mini")],
  ["$and", { $and: [{ $like: "gpt%" }, { $ne: "gpt-4" }] }, sumOf("gpt-4o")],
  ["$or", { $or: [{ $eq: "claude" }, { $and: [{ $ilike: "GPT%" }, { $like: "%mini" }] }] }, sumOf("claude", "GPT-4o-mini")],
  ["{} is no condition", {}, ALL],
  ["a null operator is absent", { $eq: null, $in: ["claude"] }, sumOf("claude")],
];

describe("advancedMeterGroupByFilters", () => {
  for (const [name, filter, expected] of CASES) {
    it(`${name}: per subject (GET and POST) and namespace-wide give ${expected}`, async () => {
      const params = { advancedMeterGroupByFilters: { model: filter } };
      expect(await totalOf("GET", params)).toBe(expected);
      expect(await totalOf("POST", params)).toBe(expected);
      expect(await totalOf("GET", params, false)).toBe(expected);
      expect(await totalOf("POST", params, false)).toBe(expected);
    });
  }

  it("filters on several keys must all hold, together with filterGroupBy", async () => {
    const params = { advancedMeterGroupByFilters: { model: { $like: "gpt%" } }, "filterGroupBy[region]": "eu" };
    expect(await totalOf("GET", params)).toBe(sumOf("gpt-4", "gpt-4o") / 2);
    expect(await totalOf("GET", params, false)).toBe(sumOf("gpt-4", "gpt-4o") / 2);
    const body = { advancedMeterGroupByFilters: { model: { $like: "gpt%" }, region: { $eq: "us" } } };
    expect(await totalOf("POST", body)).toBe(sumOf("gpt-4", "gpt-4o") / 2);
    expect(await totalOf("POST", body, false)).toBe(sumOf("gpt-4", "gpt-4o") / 2);
  });

  it("keeps rows apart by groupBy while filtering, per subject and namespace-wide alike", async () => {
    const params = { advancedMeterGroupByFilters: { model: { $in: ["claude", "gpt-4"] } }, groupBy: ["subject", "model"] };
    const order = (rows: { subject: string; groupBy: { model: string } }[]) => rows.map((r) => `${r.subject}/${r.groupBy.model}`).sort();
    const exact = await query("POST", params);
    const wide = await query("POST", params, false);
    expect(order(exact.body.data)).toEqual(subjects.flatMap((s) => [`${s}/claude`, `${s}/gpt-4`]).sort());
    expect(order(wide.body.data)).toEqual(order(exact.body.data));
  });
});

describe("filterGroupBy lists", () => {
  it("a list in the POST body matches any of its values", async () => {
    const params = { filterGroupBy: { model: ["claude", "gpt-4o"] } };
    expect(await totalOf("POST", params)).toBe(sumOf("claude", "gpt-4o"));
    expect(await totalOf("POST", params, false)).toBe(sumOf("claude", "gpt-4o"));
  });

  it("a repeated filterGroupBy[key] in the query string is a list", async () => {
    const params = { "filterGroupBy[model]": ["claude", "gpt-4o"] };
    expect(await totalOf("GET", params)).toBe(sumOf("claude", "gpt-4o"));
    expect(await totalOf("GET", params, false)).toBe(sumOf("claude", "gpt-4o"));
    expect(await totalOf("GET", { "filterGroupBy[model]": "claude" })).toBe(sumOf("claude"));
  });
});

describe("refused filters (400 naming the field)", () => {
  const refused: [name: string, method: "GET" | "POST", params: Record<string, unknown>, field: string][] = [
    ["two operators in one object", "POST", { advancedMeterGroupByFilters: { model: { $eq: "a", $ne: "b" } } }, "advancedMeterGroupByFilters.model"],
    ["an unknown operator", "POST", { advancedMeterGroupByFilters: { model: { $regex: "a" } } }, "advancedMeterGroupByFilters.model"],
    ["a non-string operand", "POST", { advancedMeterGroupByFilters: { model: { $eq: 4 } } }, "advancedMeterGroupByFilters.model.$eq"],
    ["a key the meter does not group by", "POST", { advancedMeterGroupByFilters: { user: { $eq: "a" } } }, "advancedMeterGroupByFilters"],
    ["malformed JSON in the query string", "GET", { advancedMeterGroupByFilters: "{model:" }, "advancedMeterGroupByFilters"],
    ["the parameter twice", "GET", { advancedMeterGroupByFilters: [{ model: { $eq: "a" } }, { region: { $eq: "eu" } }] }, "advancedMeterGroupByFilters"],
    ["a __proto__ key in the query string's JSON", "GET", { advancedMeterGroupByFilters: '{"__proto__":{"$eq":"a"}}' }, "advancedMeterGroupByFilters.__proto__"],
    ["more than 50 operators in all", "POST", { advancedMeterGroupByFilters: { model: { $or: Array.from({ length: 30 }, (_, i) => ({ $eq: `m${i}` })) }, region: { $or: Array.from({ length: 30 }, (_, i) => ({ $eq: `r${i}` })) } } }, "advancedMeterGroupByFilters"],
    ["nesting deeper than 8", "POST", { advancedMeterGroupByFilters: { model: Array.from({ length: 8 }).reduce<object>((f) => ({ $and: [f] }), { $eq: "a" }) } }, "advancedMeterGroupByFilters"],
    ["filterCustomerId (edgemeter has no customers)", "GET", { filterCustomerId: ["cust-1"] }, "filterCustomerId"],
    ["an empty filterGroupBy list", "POST", { filterGroupBy: { model: [] } }, "filterGroupBy.model"],
  ];
  for (const [name, method, params, field] of refused) {
    it(name, async () => {
      const res = await query(method, params);
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors.map((e: { field: string }) => e.field), res.text).toContain(field);
    });
  }
});
