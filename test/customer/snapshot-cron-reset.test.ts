import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { overdueSubjects } from "../../src/db/snapshots";
import { runCron } from "../../src/jobs/cron";
import { MINUTE, api, createKey, createMeter, customerStub, event, ingestOk, uid } from "../helpers/api";

// A Durable Object whose storage was reset (or restored to a point before its first write) answers
// the cron's nudge with "nothing stored", while D1 still holds the state row of its earlier flushes.

const stateRow = (namespace: string, subject: string) =>
  env.DB.prepare("SELECT seq, pending FROM snapshot_subjects WHERE namespace = ? AND subject = ?").bind(namespace, subject).first();

const tables = (subject: string, namespace: string) =>
  runInDurableObject(customerStub(subject, namespace), (_, state) => Number(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM sqlite_master").one().n));

describe("a pending state row whose Durable Object has stored nothing", () => {
  it("is cleared by the cron even after earlier flushes (seq > 0), instead of being nudged every run and holding freshness back", async () => {
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
