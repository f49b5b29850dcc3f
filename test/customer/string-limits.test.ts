import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { CustomerDO } from "../../src/customer/do";
import type { Notifier } from "../../src/customer/notify";
import { Sql } from "../../src/customer/sql";
import { MAX_STRING_BYTES, StatementLimitError } from "../../src/db/guard";
import { jsonChunks } from "../../src/domain/chunks";
import { api, createMeter, customerStub, event, ingestOk, rows, uid } from "../helpers/api";
import { setup, usage } from "../helpers/entitlements";
import { eventually, notifyOn, received } from "../helpers/notifications";

// Production caps a string (a bound parameter included) at 2 MB, counted in UTF-8 bytes; the local
// runtime does not (DESIGN invariant 6), so the guard must make such a statement fail here.
const utf8 = (s: string) => new TextEncoder().encode(s).byteLength;
/** A group-by value of 300,000 CJK characters: 900 KB in UTF-8, so one event fits in a 1 MiB request. */
const wide = (c: string) => c.repeat(300_000);

describe("bound strings stay under 2 MB in UTF-8", () => {
  it("the guard refuses a bound string over 2 MB in UTF-8 bytes (not characters)", async () => {
    const outcome = await runInDurableObject(customerStub(uid("guard")), (_i, state) => {
      const sql = new Sql(state.storage);
      const fits = sql.one<{ n: number }>("SELECT length(?) AS n", "x".repeat(MAX_STRING_BYTES))?.n;
      try {
        sql.one("SELECT length(?) AS n", "\u4e00".repeat(700_000));
        return { fits, over: "no error" };
      } catch (e) {
        return { fits, over: e instanceof StatementLimitError ? "guard" : String(e) };
      }
    });
    expect(outcome).toEqual({ fits: MAX_STRING_BYTES, over: "guard" });
  });

  it("jsonChunks measures its chunks in UTF-8 bytes", () => {
    const chunks = [...jsonChunks([wide("\u4e00"), wide("\u4e01"), wide("\u4e02")])];
    for (const c of chunks) expect(utf8(c)).toBeLessThanOrEqual(1_000_000);
    expect(chunks.map((c) => JSON.parse(c)).flat()).toEqual([wide("\u4e00"), wide("\u4e01"), wide("\u4e02")]);
  });

  it("an event with a wide non-ASCII group value, read by three meters, is counted (one bucket row each)", async () => {
    const type = uid("wide");
    const slugs = [uid("w"), uid("w"), uid("w")];
    for (const slug of slugs) await createMeter({ slug, eventType: type, aggregation: "COUNT", groupBy: { name: "$.name" } });
    const subject = uid("wide");
    const body = [event({ type, subject, data: { name: wide("\u4e00") } })];
    expect(utf8(JSON.stringify(body))).toBeLessThan(1024 * 1024);
    expect(await ingestOk(body)).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    for (const slug of slugs) expect((await rows(slug, { subject })).map((r) => r.value)).toEqual([1]);
  });

  it("a meter change re-meters retained events with wide non-ASCII group values", async () => {
    const type = uid("wide");
    const slug = uid("w");
    await createMeter({ slug, eventType: type, aggregation: "COUNT", groupBy: { name: "$.name" } });
    const subject = uid("wide");
    for (const c of ["\u4e00", "\u4e01", "\u4e02"]) expect((await ingestOk([event({ type, subject, data: { name: wide(c), kind: "k" } })])).accepted).toBe(1);
    const put = await api("PUT", `/api/v1/meters/${slug}`, { body: { groupBy: { name: "$.name", kind: "$.kind" } } });
    expect(put.status, put.text).toBe(200);
    // The next call carries the new definition: the object re-meters the three events in its transaction.
    expect(await ingestOk([event({ type, subject, data: { name: "short", kind: "k" } })])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect((await rows(slug, { subject, groupBy: "kind" })).map((r) => r.value)).toEqual([4]);
  });
  it("a groupBy reading one large value under several keys: the event is rejected by its size, the rest of its batch counted", async () => {
    const type = uid("rep");
    const slug = uid("rep");
    await createMeter({ slug, eventType: type, aggregation: "COUNT", groupBy: { a: "$.v", b: "$.v", c: "$.v" } });
    const subject = uid("rep");
    const body = [event({ type, subject, data: { v: "x".repeat(700_000) } }), event({ type, subject, data: { v: "small" } })];
    expect(utf8(JSON.stringify(body))).toBeLessThan(1024 * 1024);
    const res = await api("POST", "/api/v1/events", { body, type: "application/cloudevents-batch+json" });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ accepted: 1, duplicates: 0, rejected: [{ index: 0, reason: expect.stringMatching(/group-by values take 2100\d{3} bytes/) }] });
    expect((await rows(slug, { subject })).map((r) => r.value)).toEqual([1]);
  });

  it("a check recording an event whose reading is that large answers 400 and stores nothing", async () => {
    const s = await setup({ groupBy: { a: "$.v", b: "$.v", c: "$.v" }, entitlement: { isSoftLimit: true } });
    const ev = event({ type: s.eventType, subject: s.subject, data: { tokens: 1, v: "x".repeat(700_000) } });
    const res = await api("POST", "/api/v1/check", { body: { subject: s.subject, feature: s.feature, event: ev } });
    expect(res.status, res.text).toBe(400);
    expect(res.body.detail).toMatch(/group-by values take \d+ bytes/);
    expect(await rows(s.meter, { subject: s.subject })).toEqual([]);
  });

  // JSON.stringify writes 1e20 as 100000000000000000000: an event of 1 MiB sent is 4 MB stored. Such an
  // event must be refused with a reason, not fail its subject's transaction on every resend (503).
  const swollen = (s: { eventType: string; subject: string }, id: string) =>
    `{"specversion":"1.0","id":"${id}","source":"test","type":"${s.eventType}","subject":"${s.subject}","data":{"tokens":1,"n":[${Array(190_000).fill("1e20").join(",")}]}}`;

  it("an event whose numbers written out pass 2 MB is rejected by reason; the rest of its batch is counted", async () => {
    const s = await setup({ entitlement: null });
    const raw = `[${swollen(s, uid("big"))},${JSON.stringify(event({ type: s.eventType, subject: s.subject, data: { tokens: 2 } }))}]`;
    expect(raw.length).toBeLessThan(1024 * 1024);
    const res = await api("POST", "/api/v1/events", { raw, type: "application/cloudevents-batch+json" });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ accepted: 1, duplicates: 0, rejected: [{ index: 0, reason: expect.stringMatching(/bytes/) }] });
    expect((await rows(s.meter, { subject: s.subject })).map((r) => r.value)).toEqual([2]);
  });

  it("a check recording such an event answers 400, not 500", async () => {
    const s = await setup({ entitlement: { isSoftLimit: true } });
    const raw = `{"subject":"${s.subject}","feature":"${s.feature}","event":${swollen(s, uid("big"))}}`;
    expect(raw.length).toBeLessThan(1024 * 1024);
    const res = await api("POST", "/api/v1/check", { raw });
    expect(res.status, res.text).toBe(400);
    expect(res.body.detail).toMatch(/bytes/);
  });

  it("a namespace whose webhook channels together pass 2 MB still counts and notifies, also after an eviction", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 1 }, { type: "usage_value", value: 2 }]);
    // 62 channels with 32 custom headers of 1 KB each (valid, if generous): 2 MB of definitions.
    const customHeaders = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`x-token-${i}`, "t".repeat(1024)]));
    for (let i = 0; i < 62; i++) {
      const r = await api("POST", "/api/v1/notification/channels", { body: { type: "WEBHOOK", name: `wide-${i}`, url: `https://receiver.test/hooks/${uid("wide")}`, customHeaders } });
      expect(r.status, r.text).toBe(201);
    }
    expect(await ingestOk([usage(s, { tokens: 1 })])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await eventually(() => received(name), (r) => r.length === 1)).toHaveLength(1);
    // A new instance reads the definitions back from storage (the call names only the version it holds).
    await evictDurableObject(customerStub(s.subject));
    expect(await ingestOk([usage(s, { tokens: 1 })])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await eventually(() => received(name), (r) => r.length === 2)).toHaveLength(2);
  }, 30_000);

  it("definitions stored as one value (by an object from before) are read, and replaced by rows at the next config", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    const { name } = await notifyOn(s, [{ type: "usage_value", value: 1 }, { type: "usage_value", value: 2 }]);
    expect((await ingestOk([usage(s, { tokens: 1 })])).accepted).toBe(1);
    await eventually(() => received(name), (r) => r.length === 1);
    const stub = customerStub(s.subject);
    const rowsOf = () => runInDurableObject(stub, (_, st) => st.storage.sql.exec<{ key: string }>("SELECT key FROM meta WHERE key LIKE 'notify%' ORDER BY key").toArray().map((r) => r.key));
    // What the previous code left: every rule and channel in one meta value.
    await runInDurableObject(stub, (_, st) => {
      const defs = st.storage.sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta WHERE key > 'notify:' AND key < 'notify;'").toArray();
      const pick = (prefix: string) => defs.filter((d) => d.key.startsWith(prefix)).map((d) => JSON.parse(d.value));
      st.storage.sql.exec("DELETE FROM meta WHERE key > 'notify:' AND key < 'notify;'");
      st.storage.sql.exec("INSERT INTO meta (key, value) VALUES ('notify', ?)", JSON.stringify({ rules: pick("notify:rule:"), channels: pick("notify:channel:") }));
    });
    expect(await rowsOf()).toEqual(["notify"]);
    await evictDurableObject(stub);
    expect((await ingestOk([usage(s, { tokens: 1 })])).accepted).toBe(1);
    expect(await eventually(() => received(name), (r) => r.length === 2)).toHaveLength(2);
    // A definition change reaches the object: the single value gives way to a row per definition.
    const other = await api("POST", "/api/v1/notification/channels", { body: { type: "WEBHOOK", name: "later", url: `https://receiver.test/hooks/${uid("later")}` } });
    expect(other.status, other.text).toBe(201);
    expect((await ingestOk([usage(s, { tokens: 1 })])).accepted).toBe(1);
    const keys = await rowsOf();
    expect(keys).not.toContain("notify");
    expect(keys.filter((k) => k.startsWith("notify:channel:"))).toContain(`notify:channel:${other.body.id}`);
    expect(keys.filter((k) => k.startsWith("notify:rule:")).length).toBeGreaterThan(0);
  }, 30_000);

  it("a config that changes no rule or channel rewrites none of their rows", async () => {
    const s = await setup({ entitlement: { issueAfterReset: 100 } });
    await notifyOn(s, [{ type: "usage_value", value: 50 }]);
    expect((await ingestOk([usage(s, { tokens: 1 })])).accepted).toBe(1);
    const stub = customerStub(s.subject);
    const written = await runInDurableObject(stub, (instance: CustomerDO) => {
      const o = instance as unknown as { sql: Sql; notifier: Notifier };
      const defs = o.sql.all<{ value: string }>("SELECT value FROM meta WHERE key > 'notify:' AND key < 'notify;'").map((r) => JSON.parse(r.value) as Record<string, unknown>);
      expect(defs.length).toBeGreaterThan(1);
      const start = o.sql.snapshot().rowsWritten;
      o.sql.transaction(() => o.notifier.configure(defs.filter((d) => "thresholds" in d) as never, defs.filter((d) => "url" in d) as never));
      return o.sql.snapshot().rowsWritten - start;
    });
    expect(written).toBe(0);
  });

});
