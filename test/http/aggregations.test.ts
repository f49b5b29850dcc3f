import { beforeAll, describe, expect, it } from "vitest";
import { DAY, HOUR, MINUTE, api, createMeter, event, expectProblem, ingestOk, iso, queryMeter, rows, uid, utcMidnight } from "../helpers/api";

// Every value below is computed by hand from fixed event times, relative to a recent UTC midnight.
const TYPE = "agg_call";
const BASE = utcMidnight(3);
const RANGE = { from: iso(BASE), to: iso(BASE + 2 * DAY) };
// Every meter of the type must be able to read an event, or it is rejected whole: give each a `user` for UNIQUE_COUNT.
const at = (offset: number, data: Record<string, unknown>, subject: string) => event({ type: TYPE, subject, time: iso(BASE + offset), data: { user: "u0", ...data } });
/** Ingests events that must all be counted. */
const put = async (events: Record<string, unknown>[]) => expect(await ingestOk(events)).toEqual({ accepted: events.length, duplicates: 0, rejected: [] });

const MAIN = uid("main");
const MAIN_EVENTS = [
  at(10 * MINUTE, { tokens: 5, model: "a", user: "u1" }, MAIN),
  at(20 * MINUTE, { tokens: 3, model: "b", user: "u2" }, MAIN),
  at(HOUR + 5 * MINUTE, { tokens: 10, model: "a", user: "u1" }, MAIN),
  at(HOUR + 50 * MINUTE, { tokens: 2, model: "a", user: "u3" }, MAIN),
  at(DAY + 30 * MINUTE, { tokens: 7, model: "b", user: "u1" }, MAIN),
];

type Expect = { total: number; a: number; b: number; hour: number[]; day: number[] };
const EXPECTED: Record<string, Expect> = {
  SUM: { total: 27, a: 17, b: 10, hour: [8, 12, 7], day: [20, 7] },
  COUNT: { total: 5, a: 3, b: 2, hour: [2, 2, 1], day: [4, 1] },
  UNIQUE_COUNT: { total: 3, a: 2, b: 2, hour: [2, 2, 1], day: [3, 1] },
  AVG: { total: 5.4, a: 17 / 3, b: 5, hour: [4, 6, 7], day: [5, 7] },
  MIN: { total: 2, a: 2, b: 3, hour: [3, 2, 7], day: [2, 7] },
  MAX: { total: 10, a: 10, b: 7, hour: [5, 10, 7], day: [10, 7] },
  LATEST: { total: 7, a: 2, b: 7, hour: [3, 2, 7], day: [2, 7] },
};
const slug = (aggregation: string) => `agg_${aggregation.toLowerCase()}`;
const SUM = slug("SUM");

/** Rows as [windowStart, windowEnd, groupBy, value], in a stable order. */
const shape = (data: any[]) =>
  data
    .map((r) => [r.windowStart, r.windowEnd, r.groupBy, r.value] as const)
    .sort((x, y) => (x[0] + JSON.stringify(x[2]) < y[0] + JSON.stringify(y[2]) ? -1 : 1));

beforeAll(async () => {
  for (const aggregation of Object.keys(EXPECTED)) {
    const valueProperty = aggregation === "COUNT" ? undefined : aggregation === "UNIQUE_COUNT" ? "$.user" : "$.tokens";
    await createMeter({ slug: slug(aggregation), eventType: TYPE, aggregation, valueProperty, groupBy: { model: "$.model" } });
  }
  await put(MAIN_EVENTS);
});

describe.each(Object.entries(EXPECTED))("%s", (aggregation, x) => {
  const meter = slug(aggregation);

  it("over the whole range", async () => {
    const data = await rows(meter, { subject: MAIN, ...RANGE });
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({ windowStart: RANGE.from, windowEnd: RANGE.to, subject: MAIN, groupBy: {} });
    expect(data[0].value).toBeCloseTo(x.total, 10);
  });

  it("grouped by model", async () => {
    const data = shape(await rows(meter, { subject: MAIN, groupBy: "model", ...RANGE }));
    expect(data.map((r) => r[2])).toEqual([{ model: "a" }, { model: "b" }]);
    expect(data[0]![3]).toBeCloseTo(x.a, 10);
    expect(data[1]![3]).toBeCloseTo(x.b, 10);
  });

  it("in HOUR windows", async () => {
    const data = shape(await rows(meter, { subject: MAIN, windowSize: "HOUR", ...RANGE }));
    const starts = [BASE, BASE + HOUR, BASE + DAY];
    expect(data.map((r) => [r[0], r[1]])).toEqual(starts.map((s) => [iso(s), iso(s + HOUR)]));
    expect(data.map((r) => r[3])).toEqual(x.hour);
  });

  it("in DAY windows", async () => {
    const data = shape(await rows(meter, { subject: MAIN, windowSize: "DAY", ...RANGE }));
    expect(data.map((r) => [r[0], r[1]])).toEqual([[iso(BASE), iso(BASE + DAY)], [iso(BASE + DAY), iso(BASE + 2 * DAY)]]);
    expect(data.map((r) => r[3])).toEqual(x.day);
  });
});

describe("windows", () => {
  it("MINUTE windows split events a minute apart and join those within one", async () => {
    const subject = uid("minute");
    const t = 2 * HOUR;
    await put([at(t + 10_000, { tokens: 1, model: "a" }, subject), at(t + 50_000, { tokens: 2, model: "a" }, subject), at(t + MINUTE, { tokens: 4, model: "a" }, subject)]);
    const data = shape(await rows(SUM, { subject, windowSize: "MINUTE", ...RANGE }));
    expect(data).toEqual([
      [iso(BASE + t), iso(BASE + t + MINUTE), {}, 3],
      [iso(BASE + t + MINUTE), iso(BASE + t + 2 * MINUTE), {}, 4],
    ]);
    const counts = shape(await rows(slug("COUNT"), { subject, windowSize: "MINUTE", ...RANGE }));
    expect(counts.map((r) => r[3])).toEqual([2, 1]);
  });

  it("MONTH windows follow calendar months, in UTC and in America/New_York", async () => {
    const subject = uid("month");
    const now = new Date();
    const [y, m] = [now.getUTCFullYear(), now.getUTCMonth()];
    const monthStart = Date.UTC(y, m, 1);
    const ev = (t: number, tokens: number) => event({ type: TYPE, subject, time: iso(t), data: { tokens, model: "a", user: "u0" } });
    await put([ev(monthStart - 2 * DAY, 1), ev(monthStart - HOUR, 2), ev(monthStart + MINUTE, 4)]);
    const to = iso(monthStart + 2 * MINUTE);

    const utc = shape(await rows(SUM, { subject, windowSize: "MONTH", to }));
    expect(utc).toEqual([
      [iso(Date.UTC(y, m - 1, 1)), iso(monthStart), {}, 3],
      [iso(monthStart), iso(Date.UTC(y, m + 1, 1)), {}, 4],
    ]);

    // New York is 4 or 5 hours behind UTC: 00:01 UTC on the 1st is still the previous month there.
    // Midnight on the 1st is daylight time (UTC-4) for April through November, standard (UTC-5) otherwise.
    const nyMidnightOf1st = (year: number, month0: number) => {
      const d = new Date(Date.UTC(year, month0, 1));
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1, d.getUTCMonth() >= 3 && d.getUTCMonth() <= 10 ? 4 : 5);
    };
    const ny = shape(await rows(SUM, { subject, windowSize: "MONTH", windowTimeZone: "America/New_York", to }));
    expect(ny).toEqual([[iso(nyMidnightOf1st(y, m - 1)), iso(nyMidnightOf1st(y, m)), {}, 7]]);
  });

  it("Asia/Kolkata (+05:30) DAY and HOUR windows start at :30 UTC", async () => {
    const subject = uid("kolkata");
    const e = (t: number, tokens: number) => at(t, { tokens, model: "a" }, subject);
    await put([e(10 * HOUR + 10 * MINUTE, 4), e(10 * HOUR + 40 * MINUTE, 8), e(17 * HOUR, 1), e(19 * HOUR, 2)]);
    const tz = { windowTimeZone: "Asia/Kolkata" };
    const offset = 5.5 * HOUR;

    const days = shape(await rows(SUM, { subject, windowSize: "DAY", ...tz, ...RANGE }));
    expect(days).toEqual([
      [iso(BASE - offset), iso(BASE + DAY - offset), {}, 13], // 15:40, 16:10 and 22:30 IST
      [iso(BASE + DAY - offset), iso(BASE + 2 * DAY - offset), {}, 2], // 00:30 IST the next day
    ]);
    const hours = shape(await rows(SUM, { subject, windowSize: "HOUR", ...tz, ...RANGE }));
    const h = (start: number, v: number) => [iso(BASE + start), iso(BASE + start + HOUR), {}, v];
    expect(hours).toEqual([h(9.5 * HOUR, 4), h(10.5 * HOUR, 8), h(16.5 * HOUR, 1), h(18.5 * HOUR, 2)]);

    const utcDays = shape(await rows(SUM, { subject, windowSize: "DAY", ...RANGE }));
    expect(utcDays).toEqual([[iso(BASE), iso(BASE + DAY), {}, 15]]);
  });

  it("a late event lands in the window of its own time, not of its arrival", async () => {
    const subject = uid("late");
    await put([at(30 * HOUR + 5 * MINUTE, { tokens: 1, model: "a" }, subject)]);
    await put([at(27 * HOUR + 15 * MINUTE, { tokens: 2, model: "a" }, subject)]);
    await put([at(30 * HOUR + 45 * MINUTE, { tokens: 4, model: "a" }, subject)]);
    const data = shape(await rows(SUM, { subject, windowSize: "HOUR", ...RANGE }));
    expect(data).toEqual([
      [iso(BASE + 27 * HOUR), iso(BASE + 28 * HOUR), {}, 2],
      [iso(BASE + 30 * HOUR), iso(BASE + 31 * HOUR), {}, 5],
    ]);
  });
});

describe("LATEST", () => {
  it("follows event time, not arrival order, within a minute and across windows", async () => {
    const subject = uid("latest");
    const e = (t: number, tokens: number) => at(t, { tokens, model: "a" }, subject);
    await put([e(5 * HOUR + 50_000, 5), e(6 * HOUR, 1)]);
    await put([e(5 * HOUR + 10_000, 9), e(4 * HOUR, 100)]); // both earlier than what is stored
    expect((await rows(slug("LATEST"), { subject, ...RANGE }))[0].value).toBe(1);
    const hours = shape(await rows(slug("LATEST"), { subject, windowSize: "HOUR", ...RANGE }));
    expect(hours.map((r) => r[3])).toEqual([100, 5, 1]);
  });
});

describe("grouping and filtering", () => {
  it("filterGroupBy keeps only matching groups", async () => {
    const data = await rows(SUM, { subject: MAIN, "filterGroupBy[model]": "a", ...RANGE });
    expect(data.map((r) => [r.groupBy, r.value])).toEqual([[{}, 17]]);
    const grouped = await rows(slug("MAX"), { subject: MAIN, groupBy: "model", "filterGroupBy[model]": "b", windowSize: "DAY", ...RANGE });
    expect(shape(grouped)).toEqual([
      [iso(BASE), iso(BASE + DAY), { model: "b" }, 3],
      [iso(BASE + DAY), iso(BASE + 2 * DAY), { model: "b" }, 7],
    ]);
  });

  it("an event without the group-by property counts under a null group", async () => {
    const subject = uid("nullgroup");
    await put([at(MINUTE, { tokens: 1, model: "a" }, subject), at(2 * MINUTE, { tokens: 2 }, subject)]);
    const data = shape(await rows(SUM, { subject, groupBy: "model", ...RANGE }));
    expect(data.map((r) => [r[2], r[3]])).toEqual([[{ model: "a" }, 1], [{ model: null }, 2]]);
  });

  it("groupBy=subject answers one row per subject (with model too)", async () => {
    const other = uid("other");
    await put([at(5 * MINUTE, { tokens: 100, model: "a" }, other)]);
    const data = await rows(SUM, { subject: [MAIN, other], groupBy: "subject", ...RANGE });
    expect(data.map((r) => [r.subject, r.value]).sort()).toEqual([[MAIN, 27], [other, 100]].sort());
    const both = await rows(SUM, { subject: [MAIN, other], groupBy: ["subject", "model"], ...RANGE });
    const keyed = both.map((r) => `${r.subject}/${r.groupBy.model}=${r.value}`).sort();
    expect(keyed).toEqual([`${MAIN}/a=17`, `${MAIN}/b=10`, `${other}/a=100`].sort());
  });

  it("the POST body form answers the same as the GET form", async () => {
    const body = { subject: [MAIN], groupBy: ["model"], windowSize: "DAY", ...RANGE };
    const post = await api("POST", `/api/v1/meters/${SUM}/query`, { body });
    expect(post.status, post.text).toBe(200);
    const get = await queryMeter(SUM, { subject: MAIN, groupBy: "model", windowSize: "DAY", ...RANGE });
    expect(post.body).toEqual(get.body);
    expect(shape(post.body.data)).toEqual([
      [iso(BASE), iso(BASE + DAY), { model: "a" }, 17],
      [iso(BASE), iso(BASE + DAY), { model: "b" }, 3],
      [iso(BASE + DAY), iso(BASE + 2 * DAY), { model: "b" }, 7],
    ]);
    expect(post.body).toMatchObject({ from: RANGE.from, to: RANGE.to, windowSize: "DAY" });
  });

  it("Accept: text/csv answers CSV that parses back to the same rows", async () => {
    const params = new URLSearchParams({ subject: MAIN, groupBy: "model", windowSize: "DAY", ...RANGE });
    const res = await api("GET", `/api/v1/meters/${SUM}/query?${params}`, { headers: { accept: "text/csv" } });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/csv");
    const [header, ...lines] = res.text.trim().split(/\r?\n/);
    expect(header).toBe("window_start,window_end,subject,model,value");
    const parsed = lines.map((l) => l.split(",")).map(([ws, we, s, model, v]) => [ws, we, s, model, Number(v)]);
    expect(parsed.sort()).toEqual(
      [
        [iso(BASE), iso(BASE + DAY), MAIN, "a", 17],
        [iso(BASE), iso(BASE + DAY), MAIN, "b", 3],
        [iso(BASE + DAY), iso(BASE + 2 * DAY), MAIN, "b", 7],
      ].sort(),
    );
  });
});

describe("query errors", () => {
  it("404 for an unknown meter", async () => {
    expectProblem(await queryMeter("no_such_meter", { subject: MAIN }), 404, "not_found");
  });

  it.each(["Mars/Olympus_Mons", "+05:30", "not a zone"])("400 for windowTimeZone %j", async (windowTimeZone) => {
    const res = await queryMeter(SUM, { subject: MAIN, windowSize: "DAY", windowTimeZone });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain("windowTimeZone");
  });

  it("400 for a groupBy or filterGroupBy key the meter does not have", async () => {
    const res = await queryMeter(SUM, { subject: MAIN, groupBy: "region" });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain("groupBy");
    expectProblem(await queryMeter(SUM, { subject: MAIN, "filterGroupBy[region]": "eu" }), 400, "validation_failed");
  });

  it("400 for an unknown windowSize, a bad date, from after to, or MINUTE windows without subject", async () => {
    expectProblem(await queryMeter(SUM, { subject: MAIN, windowSize: "WEEK" }), 400, "validation_failed");
    expectProblem(await queryMeter(SUM, { subject: MAIN, from: "yesterday" }), 400, "validation_failed");
    expectProblem(await queryMeter(SUM, { subject: MAIN, from: RANGE.to, to: RANGE.from }), 400, "validation_failed");
    // Without subject the query is namespace-wide (D1 snapshots, issue 5), which refuses MINUTE windows.
    expectProblem(await queryMeter(SUM, { windowSize: "MINUTE" }), 400, "validation_failed");
    expectProblem(await api("POST", `/api/v1/meters/${SUM}/query`, { raw: "{not json" }), 400, "malformed_json");
  });
});

describe("instants near the end of RFC 3339", () => {
  it("a month window that would end in year 10000 is answered with RFC 3339 times", async () => {
    const meter = uid("m");
    await createMeter({ slug: meter, eventType: "prompt", aggregation: "COUNT" });
    const res = await api("GET", `/api/v1/meters/${meter}/query?from=9999-11-01T00:00:00Z&to=9999-12-31T23:59:59Z&windowSize=MONTH`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.to).toBe("9999-12-31T23:59:59.999Z");
    for (const t of [res.body.from, res.body.to, ...res.body.data.flatMap((r: { windowStart: string; windowEnd: string }) => [r.windowStart, r.windowEnd])]) {
      expect(t).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    }
  });
});

