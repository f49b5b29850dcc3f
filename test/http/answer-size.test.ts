import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { granuleOf } from "../../src/domain/rollup";
import { gatherWithinCap, MAX_ANSWER_ROWS } from "../../src/http/answer-size";
import { api, createKey, createMeter, customerStub, event, expectProblem, ingestOk, iso, uid } from "../helpers/api";

// An answer past MAX_ANSWER_ROWS is refused with a 400 that says how to narrow it, instead of being
// built whole in the Worker (production: 128 MB) — per subject and namespace-wide.

const SLUG = "answer_rows";
let meterId: string;
beforeAll(async () => {
  const m = await createMeter({ slug: SLUG, eventType: "answer", aggregation: "SUM", valueProperty: "$.n" });
  expect(m.status, m.text).toBe(201);
  meterId = m.body.id;
});

/** A subject whose object holds `n` minute buckets of the meter, ending a minute ago (its first event's among them). */
async function subjectWithMinutes(n: number): Promise<{ subject: string; first: number; last: number }> {
  const subject = uid("minutes");
  await ingestOk([event({ subject, type: "answer", data: { n: 1 }, time: iso(Date.now() - 10 * 86_400_000) })]);
  const last = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
  await runInDurableObject(customerStub(subject), (_, state) => {
    state.storage.sql.exec(
      `WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < ? - 1)
       INSERT OR REPLACE INTO buckets (meter_id, minute, group_key, sum, count, min, max, latest_at, latest)
       SELECT ?, ? - i * 60000, '{}', 1, 1, 1, 1, ? - i * 60000, 1 FROM r`,
      n,
      meterId,
      last,
      last,
    );
  });
  return { subject, first: last - (n - 1) * 60_000, last };
}

describe(`answers of more than ${MAX_ANSWER_ROWS.toLocaleString("en")} rows`, () => {
  it("per subject: refused with 400, while the same history in fewer windows answers", async () => {
    const { subject, first, last } = await subjectWithMinutes(MAX_ANSWER_ROWS + 1);
    const range = `subject=${subject}&from=${encodeURIComponent(iso(first + 60_000))}&to=${encodeURIComponent(iso(last + 60_000))}`;
    const exact = await api("GET", `/api/v1/meters/${SLUG}/query?${range}&windowSize=MINUTE`);
    expect(exact.status, exact.text.slice(0, 300)).toBe(200);
    expect(exact.body.data).toHaveLength(MAX_ANSWER_ROWS);
    const wider = `subject=${subject}&from=${encodeURIComponent(iso(first))}&to=${encodeURIComponent(iso(last + 60_000))}`;
    const over = await api("GET", `/api/v1/meters/${SLUG}/query?${wider}&windowSize=MINUTE`);
    expectProblem(over, 400, "bad_request");
    expect(over.body.detail).toContain("narrow it with from/to, a larger windowSize");
    const hours = await api("GET", `/api/v1/meters/${SLUG}/query?${wider}&windowSize=HOUR`);
    expect(hours.status, hours.text.slice(0, 300)).toBe(200);
    expect(hours.body.data.reduce((n: number, r: { value: number }) => n + r.value, 0)).toBe(MAX_ANSWER_ROWS + 1);
  }, 60_000);

  it("namespace-wide: refused with 400 when grouped by subject, answered when not", async () => {
    const { key, namespace } = await createKey({ scopes: ["admin"], namespace: uid("ns-rows") });
    const m = await createMeter({ slug: SLUG, eventType: "answer", aggregation: "SUM", valueProperty: "$.n" }, key);
    const window = granuleOf(Date.now() - 86_400_000);
    // One snapshot row for each of MAX + 1 subjects, as their flushes would have left them.
    await env.DB.prepare(
      `WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < ?)
       INSERT INTO usage_snapshots (namespace, meter_id, window_start, subject, group_key, sum, count, min, max, latest_at, latest)
       SELECT ?, ?, ?, 's' || i, '{}', 1, 1, 1, 1, ?, 1 FROM r`,
    )
      .bind(MAX_ANSWER_ROWS, namespace, m.body.id, window, window)
      .run();
    const bySubject = await api("GET", `/api/v1/meters/${SLUG}/query?groupBy=subject`, { key });
    expectProblem(bySubject, 400, "bad_request");
    const whole = await api("GET", `/api/v1/meters/${SLUG}/query`, { key });
    expect(whole.status, whole.text.slice(0, 300)).toBe(200);
    expect(whole.body.data).toEqual([expect.objectContaining({ value: MAX_ANSWER_ROWS + 1 })]);
  }, 60_000);

  it("several subjects: their sum decides, a subject over its share is asked again for what is left", async () => {
    // Each has a bucket in every minute of its range (all reach back past its event 10 days ago).
    const [a, b, c, d] = await Promise.all([65_000, 20_000, 15_000, 15_000].map((n) => subjectWithMinutes(n)));
    const range = `from=${encodeURIComponent(iso(a!.first))}&to=${encodeURIComponent(iso(a!.last + 60_000))}&windowSize=MINUTE`;
    const three = await api("GET", `/api/v1/meters/${SLUG}/query?${range}&subject=${a!.subject}&subject=${b!.subject}&subject=${c!.subject}`);
    expect(three.status, three.text.slice(0, 300)).toBe(200);
    expect(three.body.data).toHaveLength(MAX_ANSWER_ROWS);
    const count = new Map<string, number>();
    for (const r of three.body.data as { subject: string }[]) count.set(r.subject, (count.get(r.subject) ?? 0) + 1);
    expect(Object.fromEntries(count)).toEqual({ [a!.subject]: 65_000, [b!.subject]: 20_000, [c!.subject]: 15_000 });
    const four = await api("GET", `/api/v1/meters/${SLUG}/query?${range}&subject=${a!.subject}&subject=${b!.subject}&subject=${c!.subject}&subject=${d!.subject}`);
    expectProblem(four, 400, "bad_request");
    expect(four.body.detail).toContain("fewer subjects");
  }, 120_000);
});

describe("gatherWithinCap", () => {
  it("asks for no more than the cap and a row per key at a time, however many keys have a full answer", async () => {
    const cap = 1_000;
    let inFlight = 0;
    let peak = 0;
    const ask = async (_key: number, maxRows: number) => {
      const rows = Array.from({ length: Math.min(cap, maxRows + 1) }, (_, i) => i);
      peak = Math.max(peak, (inFlight += rows.length));
      await new Promise((r) => setTimeout(r, 1));
      inFlight -= rows.length;
      return rows;
    };
    const keys = Array.from({ length: 100 }, (_, i) => i);
    await expect(gatherWithinCap(keys, ask, cap)).rejects.toMatchObject({ code: "bad_request" });
    expect(peak).toBeLessThanOrEqual(cap + keys.length);
  });

  it("answers every key's rows in key order when their sum fits, asking a large one again", async () => {
    const sizes = [10, 700, 5, 200, 85];
    const asked: [number, number][] = [];
    const parts = await gatherWithinCap(sizes.map((_, i) => i), async (i, maxRows) => {
      asked.push([i, maxRows]);
      return Array.from({ length: Math.min(sizes[i]!, maxRows + 1) }, () => i);
    }, 1_000);
    expect(parts.map((p) => p.length)).toEqual(sizes);
    expect(parts.every((p, i) => p.every((v) => v === i))).toBe(true);
    expect(asked.filter(([i]) => i === 1)).toEqual([[1, 200], [1, 700]]);
  });
});
