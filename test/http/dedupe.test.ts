import { beforeAll, describe, expect, it } from "vitest";
import { createMeter, event, ingest, ingestOk, listEvents, total, uid } from "../helpers/api";

// Exactly-once counting (DESIGN invariant 1): an event counts iff its (source, id) is new for its subject.
const TYPE = "dedupe_call";
const METER = "dedupe_units";
const ev = (subject: string, n: number, over: Record<string, unknown> = {}) => event({ type: TYPE, subject, data: { units: n }, ...over });

beforeAll(async () => {
  await createMeter({ slug: METER, eventType: TYPE, aggregation: "SUM", valueProperty: "$.units" });
});

describe("deduplication", () => {
  it("counts an event repeated inside one batch once", async () => {
    const subject = uid("inbatch");
    const a = ev(subject, 3);
    const b = ev(subject, 4);
    expect(await ingestOk([a, b, a, a, b])).toEqual({ accepted: 2, duplicates: 3, rejected: [] });
    expect(await total(METER, subject)).toBe(7);
    expect(await listEvents(subject)).toHaveLength(2);
  });

  it("counts an event repeated across batches once, whatever data the resend carries", async () => {
    const subject = uid("across");
    const a = ev(subject, 1);
    const b = ev(subject, 10);
    const c = ev(subject, 100);
    expect(await ingestOk([a, b])).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    // The first occurrence stands: a changed payload under the same (source, id) is still a duplicate.
    expect(await ingestOk([{ ...b, data: { units: 5000 } }, c])).toEqual({ accepted: 1, duplicates: 1, rejected: [] });
    expect(await ingestOk([a, b, c])).toEqual({ accepted: 0, duplicates: 3, rejected: [] });
    expect(await total(METER, subject)).toBe(111);
  });

  it("treats the same id from another source, or for another subject, as a different event", async () => {
    const s1 = uid("src");
    const s2 = uid("src");
    const a = ev(s1, 2, { id: uid("shared_id"), source: "billing" });
    expect(await ingestOk([a, { ...a, source: "gateway" }, { ...a, subject: s2 }])).toEqual({ accepted: 3, duplicates: 0, rejected: [] });
    expect(await total(METER, s1)).toBe(4);
    expect(await total(METER, s2)).toBe(2);
  });

  it("counts a batch sent 10 times concurrently exactly once, across subjects", async () => {
    const subjects = [uid("conc"), uid("conc")];
    const N = 40;
    const batch = Array.from({ length: N }, (_, i) => ev(subjects[i % 2]!, i + 1));
    const replies = await Promise.all(Array.from({ length: 10 }, () => ingest(batch)));
    for (const r of replies) expect(r.status, r.text).toBe(202);
    const accepted = replies.reduce((a, r) => a + r.body.accepted, 0);
    const duplicates = replies.reduce((a, r) => a + r.body.duplicates, 0);
    expect(accepted).toBe(N);
    expect(duplicates).toBe(9 * N);
    for (const r of replies) expect(r.body.rejected).toEqual([]);

    const expectedBySubject = [0, 1].map((k) => batch.filter((_, i) => i % 2 === k).reduce((a, e) => a + (e.data as { units: number }).units, 0));
    expect(await total(METER, subjects[0]!)).toBe(expectedBySubject[0]);
    expect(await total(METER, subjects[1]!)).toBe(expectedBySubject[1]);
    expect(expectedBySubject[0]! + expectedBySubject[1]!).toBe((N * (N + 1)) / 2);
  });

  it("counts overlapping batches sent concurrently once per distinct event", async () => {
    const subject = uid("overlap");
    const pool = Array.from({ length: 30 }, (_, i) => ev(subject, 1 + (i % 3)));
    // Ten batches, each a different window of the pool: most events appear in several of them.
    const batches = Array.from({ length: 10 }, (_, k) => pool.slice(k * 2, k * 2 + 12));
    const replies = await Promise.all(batches.map((b) => ingest(b)));
    for (const r of replies) expect(r.status, r.text).toBe(202);
    const distinct = new Set(batches.flat().map((e) => e.id));
    expect(replies.reduce((a, r) => a + r.body.accepted, 0)).toBe(distinct.size);
    expect(replies.reduce((a, r) => a + r.body.accepted + r.body.duplicates, 0)).toBe(batches.flat().length);
    const expected = pool.filter((e) => distinct.has(e.id)).reduce((a, e) => a + (e.data as { units: number }).units, 0);
    expect(await total(METER, subject)).toBe(expected);
  });
});
