import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { overdueSubjects } from "../../src/db/snapshots";
import { runCron } from "../../src/jobs/cron";
import { MINUTE, api, createKey, createMeter, customerStub, event, ingestOk, uid } from "../helpers/api";

// Which subjects owe D1 a flush is kept in snapshot_subjects alone (pending rows, seq 0 until the
// first flush): freshness and the cron never scan `subjects`, where the subjects API lists customers
// that have no usage and no Durable Object storage.

const stateRow = (namespace: string, subject: string) =>
  env.DB.prepare("SELECT seq, pending FROM snapshot_subjects WHERE namespace = ? AND subject = ?").bind(namespace, subject).first();

/** Tables in the subject's Durable Object: 0 while nothing was ever stored there. */
const tables = (subject: string, namespace = "default") =>
  runInDurableObject(customerStub(subject, namespace), (_, state) => Number(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM sqlite_master").one().n));

const slug = "owed_tokens";
beforeAll(async () => {
  expect((await createMeter({ slug, eventType: "owed", aggregation: "SUM", valueProperty: "$.tokens" })).status).toBe(201);
});

describe("a flush owed", () => {
  it("is noted with the first stored usage, and settled by the first flush", async () => {
    const s = uid("first");
    await ingestOk([event({ subject: s, type: "owed", data: { tokens: 2 } })]);
    expect(await stateRow("default", s)).toEqual({ seq: 0, pending: 1 });
    expect(await customerStub(s).flushSnapshots({ namespace: "default", subject: s })).toMatchObject({ applied: true, seq: 1 });
    expect(await stateRow("default", s)).toEqual({ seq: 1, pending: 0 });
  });

  it("is not held against a subject created through the API that has no usage", async () => {
    const { key, namespace } = await createKey({ scopes: ["admin"], namespace: uid("ns-owed") });
    await createMeter({ slug, eventType: "owed", aggregation: "SUM", valueProperty: "$.tokens" }, key);
    const s = uid("listed");
    expect((await api("POST", "/api/v1/subjects", { body: [{ key: s, displayName: "No usage yet" }], key })).status).toBe(200);
    // Listed long ago: before, its registration held completeBefore back and counted as overdue for good.
    await env.DB.prepare("UPDATE subjects SET created_at = ? WHERE namespace = ? AND key = ?").bind(Date.now() - 60 * MINUTE, namespace, s).run();
    const before = Date.now();
    const wide = await api("GET", `/api/v1/meters/${slug}/query`, { key });
    expect(wide.status, wide.text).toBe(200);
    expect(wide.body.freshness).toMatchObject({ pendingSubjects: 0, overdueSubjects: 0 });
    expect(Date.parse(wide.body.freshness.completeBefore)).toBeGreaterThan(before - 41_000);
    expect(await stateRow(namespace, s)).toBeNull();
  });

  it("that migration 0012 noted for a subject without storage is cleared by the cron's nudge, which leaves that object without storage, and owed again from its first usage", async () => {
    const s = uid("backfilled");
    const long = Date.now() - 60 * MINUTE;
    await env.DB.batch([
      env.DB.prepare("INSERT INTO subjects (namespace, key, id, created_at) VALUES ('default', ?, ?, ?)").bind(s, `01J${s.slice(-23).padStart(23, "0")}`, long),
      env.DB.prepare("INSERT INTO snapshot_subjects (namespace, subject, seq, as_of, flushed_at, pending) VALUES ('default', ?, 0, ?, ?, 1)").bind(s, long, long),
    ]);
    let report;
    // Picked at random among the overdue: other tests' subjects may be overdue too.
    for (let run = 0; run < 20 && (await stateRow("default", s))?.pending === 1; run++) report = await runCron(env, Date.now());
    expect(report?.cleared).toBeGreaterThanOrEqual(1);
    expect(await stateRow("default", s)).toEqual({ seq: 0, pending: 0 });
    expect(await tables(s)).toBe(0);
    // Its first usage, later, makes the flush owed again.
    await ingestOk([event({ subject: s, type: "owed", data: { tokens: 1 } })]);
    expect(await stateRow("default", s)).toEqual({ seq: 0, pending: 1 });
  });

  it("keeps the time it has been owed since when the registration runs again before the first flush (its first answer was lost)", async () => {
    const { key, namespace } = await createKey({ scopes: ["admin"], namespace: uid("ns-again") });
    await createMeter({ slug, eventType: "owed", aggregation: "SUM", valueProperty: "$.tokens" }, key);
    const s = uid("again");
    await ingestOk([event({ subject: s, type: "owed", data: { tokens: 3 } })], { key });
    // As if that batch was counted long ago and its flush was lost: no alarm, the owed row backdated.
    const long = Date.now() - 60 * MINUTE;
    const r = await env.DB.prepare("UPDATE snapshot_subjects SET as_of = ?1, flushed_at = ?1 WHERE namespace = ? AND subject = ? AND seq = 0 AND pending = 1").bind(long, namespace, s).run();
    expect(r.meta.changes).toBe(1);
    // D1 committed the registration, but the object never learnt it (the answer was lost, or it
    // registered before it kept the row): its next write registers again.
    await runInDurableObject(customerStub(s, namespace), async (instance, state) => {
      state.storage.sql.exec("DELETE FROM meta WHERE key = 'subject_row' OR key LIKE 'job:%'");
      await state.storage.deleteAlarm();
      (instance as unknown as { registered: boolean }).registered = false;
    });
    await ingestOk([event({ subject: s, type: "owed", data: { tokens: 4 } })], { key });
    expect(await env.DB.prepare("SELECT as_of, flushed_at, pending FROM snapshot_subjects WHERE namespace = ? AND subject = ?").bind(namespace, s).first()).toMatchObject({ as_of: long, pending: 1 });
    // The first batch is still not in D1: the namespace-wide answer must not claim it.
    const wide = await api("GET", `/api/v1/meters/${slug}/query`, { key });
    expect(wide.status, wide.text).toBe(200);
    expect(Date.parse(wide.body.freshness.completeBefore)).toBeLessThanOrEqual(long);
  });

  it("is picked at random among the overdue, so subjects whose nudge keeps failing cannot hold the others back", async () => {
    const { namespace } = await createKey({ scopes: ["admin"], namespace: uid("ns-random") });
    const long = Date.now() - 60 * MINUTE;
    const subjects = [uid("a"), uid("b")];
    // Other namespaces' overdue rows: every row of this test's namespace is backdated further, but random order ignores that.
    await env.DB.batch(subjects.map((s) => env.DB.prepare("INSERT INTO snapshot_subjects (namespace, subject, seq, as_of, flushed_at, pending) VALUES (?, ?, 0, ?, ?, 1)").bind(namespace, s, long, long)));
    const seen = new Set<string>();
    const db = database(env.DB);
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      for (const o of await overdueSubjects(db, Date.now(), 1)) if (o.namespace === namespace) seen.add(o.subject);
    }
    expect(seen).toEqual(new Set(subjects));
  });
});

describe("reads of a subject nothing was stored for", () => {
  it("answer as before and leave its Durable Object without storage", async () => {
    const s = uid("nobody");
    const enc = encodeURIComponent(s);
    const answers = await Promise.all([
      api("GET", `/api/v1/subjects/${enc}/entitlements`),
      api("GET", `/api/v1/subjects/${enc}/entitlements/some_feature/value`),
      api("GET", `/api/v1/meters/${slug}/query?subject=${enc}`),
      api("GET", `/api/v1/events?subject=${enc}`),
      api("POST", "/api/v1/check", { body: { subject: s, featureKey: "some_feature" } }),
    ]);
    for (const a of answers) expect(a.status, a.text).toBeLessThan(500);
    expect(await tables(s)).toBe(0);
    // The first write creates the schema.
    await ingestOk([event({ subject: s, type: "owed", data: { tokens: 1 } })]);
    expect(await tables(s)).toBeGreaterThan(0);
    const q = await api("GET", `/api/v1/meters/${slug}/query?subject=${enc}`);
    expect(q.body.data.reduce((n: number, r: { value: number }) => n + r.value, 0)).toBe(1);
  });

  // A Durable Object whose storage was reset (or restored to a point before its first write) answers
  // the nudge with "nothing stored", while D1 still holds the state row of its earlier flushes.
  it("is cleared by the cron for an object that stored nothing even after earlier flushes (seq > 0), instead of being nudged every run and holding freshness back", async () => {
    const { key, namespace } = await createKey({ scopes: ["admin"], namespace: uid("ns-reset") });
    await createMeter({ slug: "reset_tokens", eventType: "reset", aggregation: "SUM", valueProperty: "$.tokens" }, key);
    const s = uid("reset");
    const long = Date.now() - 60 * MINUTE;
    // Its last flush (seq 3) said more was to follow; then the object's storage was lost.
    await env.DB.prepare("INSERT INTO snapshot_subjects (namespace, subject, seq, as_of, flushed_at, pending) VALUES (?, ?, 3, ?, ?, 1)").bind(namespace, s, long, long).run();

    const db = database(env.DB);
    let cleared = 0;
    for (let run = 0; run < 5; run++) {
      const picked = (await overdueSubjects(db, Date.now() - 2 * MINUTE - 60_000, 1_000)).some((o) => o.namespace === namespace && o.subject === s);
      if (!picked) break;
      cleared += (await runCron(env, Date.now())).cleared;
    }
    expect(cleared).toBeGreaterThanOrEqual(1);
    expect(await stateRow(namespace, s)).toEqual({ seq: 3, pending: 0 });
    expect(await overdueSubjects(db, Date.now(), 1_000)).not.toContainEqual({ namespace, subject: s });
    expect(await tables(s, namespace)).toBe(0);

    const wide = await api("GET", "/api/v1/meters/reset_tokens/query", { key });
    expect(wide.status, wide.text).toBe(200);
    expect(wide.body.freshness).toMatchObject({ pendingSubjects: 0, overdueSubjects: 0 });
    expect(Date.parse(wide.body.freshness.completeBefore)).toBeGreaterThan(long);

    // Its usage from now on still reaches D1: the object's first flush is refused (D1 is at seq 3)
    // and the next one is sent above D1's number.
    await ingestOk([event({ subject: s, type: "reset", data: { tokens: 7 } })], { key });
    const nudge = () => customerStub(s, namespace).flushSnapshots({ namespace, subject: s });
    expect(await nudge()).toMatchObject({ applied: false });
    expect(await nudge()).toMatchObject({ applied: true, seq: 4 });
    const sum = await env.DB.prepare("SELECT sum(sum) AS n FROM usage_snapshots WHERE namespace = ? AND subject = ?").bind(namespace, s).first<{ n: number }>();
    expect(sum?.n).toBe(7);
    expect(await stateRow(namespace, s)).toEqual({ seq: 4, pending: 0 });
  });
});
