import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { DAY, HOUR, api, createMeter, customerStub, event, ingestOk, iso, rows, total, uid } from "../helpers/api";

// The customer Durable Object is the truth for its customer: its state must live in storage, not memory.
const TYPE = "dur_call";
const METER = "dur_units";
const ev = (subject: string, n: unknown, over: Record<string, unknown> = {}) => event({ type: TYPE, subject, data: { n }, ...over });

beforeAll(async () => {
  await createMeter({ slug: METER, eventType: TYPE, aggregation: "SUM", valueProperty: "$.n" });
});

describe("eviction", () => {
  it("keeps totals and the dedupe log across evictions", async () => {
    const subject = uid("evict");
    const batch = [ev(subject, 1), ev(subject, 2), ev(subject, 3)];
    expect(await ingestOk(batch)).toEqual({ accepted: 3, duplicates: 0, rejected: [] });
    const stub = customerStub(subject);

    await evictDurableObject(stub);
    expect(await total(METER, subject)).toBe(6);

    await evictDurableObject(stub);
    expect(await ingestOk(batch)).toEqual({ accepted: 0, duplicates: 3, rejected: [] });
    expect(await ingestOk([ev(subject, 4)])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });

    await evictDurableObject(stub);
    expect(await total(METER, subject)).toBe(10);
  });
});

describe("re-metering from the retained event log", () => {
  it("a meter created after its events were ingested counts them", async () => {
    const subject = uid("before");
    const type = uid("later_type");
    const t0 = Date.now() - 2 * HOUR;
    const e = (n: unknown, region: string, t: number) => event({ type, subject, time: iso(t), data: { n, region } });
    const events = [e(5, "eu", t0), e(7, "us", t0 + 10_000), e(11, "eu", t0 + HOUR), e("not a number", "eu", t0 + HOUR)];
    // No meter reads this type yet: every event is stored, none is rejected.
    expect(await ingestOk(events)).toEqual({ accepted: 4, duplicates: 0, rejected: [] });

    const slug = uid("late_meter");
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n", groupBy: { region: "$.region" } });
    expect(await total(slug, subject)).toBe(23);
    const byRegion = await rows(slug, { subject, groupBy: "region" });
    expect(byRegion.map((r) => [r.groupBy.region, r.value]).sort()).toEqual([["eu", 16], ["us", 7]]);

    // Re-metered events are still deduplicated; new ones add on top.
    expect(await ingestOk([events[0]!, e(1, "us", t0 + 2 * HOUR)])).toEqual({ accepted: 1, duplicates: 1, rejected: [] });
    expect(await total(slug, subject)).toBe(24);

    // A second meter with eventFrom only counts events from that time on.
    const from = uid("late_from");
    await createMeter({ slug: from, eventType: type, aggregation: "COUNT", eventFrom: iso(t0 + 30 * 60_000) });
    expect(await total(from, subject)).toBe(3);
  });

  it("a meter PUT that changes groupBy re-meters what was counted", async () => {
    const subject = uid("regroup");
    const slug = uid("regroup_meter");
    const type = uid("regroup_type");
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n" });
    const e = (n: number, model: string) => event({ type, subject, time: iso(Date.now() - HOUR), data: { n, model } });
    await ingestOk([e(1, "a"), e(2, "b"), e(4, "a")]);
    expect((await api("GET", `/api/v1/meters/${slug}/query?subject=${subject}&groupBy=model`)).status).toBe(400);

    const put = await api("PUT", `/api/v1/meters/${slug}`, { body: { groupBy: { model: "$.model" } } });
    expect(put.status, put.text).toBe(200);
    expect(put.body.groupBy).toEqual({ model: "$.model" });
    const grouped = await rows(slug, { subject, groupBy: "model" });
    expect(grouped.map((r) => [r.groupBy.model, r.value]).sort()).toEqual([["a", 5], ["b", 2]]);

    // Counting continues under the new definition; a second change re-meters again.
    await ingestOk([e(8, "b")]);
    const put2 = await api("PUT", `/api/v1/meters/${slug}`, { body: { groupBy: { kind: "$.model" } } });
    expect(put2.status, put2.text).toBe(200);
    const regrouped = await rows(slug, { subject, groupBy: "kind" });
    expect(regrouped.map((r) => [r.groupBy.kind, r.value]).sort()).toEqual([["a", 5], ["b", 10]]);
    expect(await total(slug, subject)).toBe(15);
  });

  it("a deleted meter re-created under the same slug re-meters retained events with its new definition", async () => {
    const subject = uid("recreate");
    const slug = uid("recreate_meter");
    const type = uid("recreate_type");
    await createMeter({ slug, eventType: type, aggregation: "SUM", valueProperty: "$.n" });
    await ingestOk([3, 9, 4].map((n) => event({ type, subject, data: { n } })));
    expect(await total(slug, subject)).toBe(16);
    expect((await api("DELETE", `/api/v1/meters/${slug}`)).status).toBe(204);
    await createMeter({ slug, eventType: type, aggregation: "MAX", valueProperty: "$.n" });
    expect(await total(slug, subject)).toBe(9);
  });
});

describe("retention alarm", () => {
  it("prunes events older than retention, records the watermark, keeps the totals", async () => {
    const subject = uid("prune");
    const recent = ev(subject, 3);
    await ingestOk([recent]);
    const stub = customerStub(subject);
    const old = Date.now() - 40 * DAY;
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec(
        "INSERT INTO events (source, id, time, type, data, ingested_at) VALUES (?, ?, ?, ?, ?, ?)",
        "test",
        "ancient",
        old,
        TYPE,
        JSON.stringify({ n: 100 }),
        old,
      );
    });
    const ids = () => runInDurableObject(stub, (_i, state) => state.storage.sql.exec<{ id: string }>("SELECT id FROM events").toArray().map((r) => r.id).sort());
    expect(await ids()).toEqual(["ancient", recent.id].sort());

    // The alarm runs only jobs that are due (src/customer/jobs.ts keeps `job:<name>` due times in
    // meta), and a write makes pruning due an hour later: move that hour forward, as time would.
    const due = await runInDurableObject(stub, (_i, state) => {
      const jobs = state.storage.sql.exec<{ key: string }>("SELECT key FROM meta WHERE key LIKE 'job:%'").toArray().map((r) => r.key);
      state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'job:prune'", Date.now() - 1);
      return jobs;
    });
    expect(due).toContain("job:prune");
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const startedBefore = Date.now();

    expect(await ids()).toEqual([recent.id]);
    const { prunedBefore, alarm } = await runInDurableObject(stub, async (_i, state) => ({
      prunedBefore: state.storage.sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'pruned_before'").toArray()[0]?.value,
      alarm: await state.storage.getAlarm(),
    }));
    expect(typeof prunedBefore).toBe("number");
    expect(prunedBefore!).toBeGreaterThan(old);
    expect(prunedBefore!).toBeLessThanOrEqual(startedBefore - 35 * DAY);
    expect(prunedBefore! % 60_000).toBe(0);
    // Events remain, so pruning stays scheduled.
    expect(alarm).not.toBeNull();

    expect(await total(METER, subject)).toBe(3);
    // A resend of the pruned event is outside the window: rejected, never counted again.
    const resend = await ingestOk([{ ...ev(subject, 100), id: "ancient", time: iso(old) }]);
    expect(resend.accepted).toBe(0);
    expect(resend.rejected.map((r) => r.id)).toEqual(["ancient"]);
    expect(await total(METER, subject)).toBe(3);
  });
});
