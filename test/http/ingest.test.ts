import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, DAY, MINUTE, api, createMeter, event, expectProblem, ingest, ingestOk, iso, listEvents, total, uid } from "../helpers/api";

// One SUM meter over this file's event type; every test uses its own subject.
const TYPE = "ingest_prompt";
const METER = "ingest_tokens";
const ev = (subject: string, over: Record<string, unknown> = {}) => event({ type: TYPE, subject, ...over });

/** Every stored event of a subject, whatever its time (the list defaults to the last 72 hours). */
const storedIds = async (subject: string) =>
  (await listEvents(subject, undefined, `&from=${iso(Date.now() - 40 * DAY)}&to=${iso(Date.now() + 60 * MINUTE)}`)).map((e) => e.event.id).sort();

beforeAll(async () => {
  await createMeter({ slug: METER, eventType: TYPE, aggregation: "SUM", valueProperty: "$.tokens" });
});

describe("content types", () => {
  it.each([
    ["application/cloudevents+json", false],
    ["application/cloudevents-batch+json", true],
    ["application/json", false],
    ["application/json", true],
    ["application/cloudevents-batch+json; charset=utf-8", true],
    ["application/cloudevents+json; charset=UTF-8", false],
  ])("%s (array: %s) → 202 with accepted/duplicates/rejected", async (type, isArray) => {
    const subject = uid("ct");
    const events = isArray ? [ev(subject, { data: { tokens: 2 } }), ev(subject, { data: { tokens: 3 } })] : [ev(subject, { data: { tokens: 4 } })];
    const res = await api("POST", "/api/v1/events", { body: isArray ? events : events[0], type });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toEqual({ accepted: events.length, duplicates: 0, rejected: [] });
    expect(await total(METER, subject)).toBe(isArray ? 5 : 4);
  });

  it.each([
    ["text/plain", "text/plain"],
    ["no content type", null],
    ["a latin1 charset", "application/json; charset=latin1"],
  ])("415 for %s, and nothing stored", async (_label, type) => {
    const subject = uid("ct415");
    const res = await api("POST", "/api/v1/events", { body: [ev(subject)], type });
    expectProblem(res, 415, "unsupported_media_type");
    expect(await storedIds(subject)).toEqual([]);
  });

  it("400 when the single-event type carries an array, or the batch type a single object", async () => {
    const subject = uid("shape");
    expectProblem(await api("POST", "/api/v1/events", { body: [ev(subject)], type: "application/cloudevents+json" }), 400, "validation_failed");
    expectProblem(await api("POST", "/api/v1/events", { body: ev(subject), type: "application/cloudevents-batch+json" }), 400, "validation_failed");
    expect(await storedIds(subject)).toEqual([]);
  });
});

describe("malformed requests are refused whole", () => {
  it("400 invalid_events naming each bad event by index and field; nothing from the request is stored", async () => {
    const subject = uid("bad");
    const good = ev(subject, { data: { tokens: 9 } });
    const { id: _drop, ...noId } = ev(subject);
    const batch = [
      good,
      noId,
      ev(subject, { specversion: "0.3" }),
      ev(subject, { time: "2023-02-30T00:00:00Z" }),
      ev(subject, { data: [1, 2, 3] }),
      42,
    ];
    const res = await ingest(batch);
    expectProblem(res, 400, "invalid_events");
    const errors: { index: number; field: string; message: string }[] = res.body.errors;
    const at = (index: number) => errors.filter((e) => e.index === index).map((e) => e.field);
    expect(at(0)).toEqual([]);
    expect(at(1)).toEqual(["id"]);
    expect(at(2)).toEqual(["specversion"]);
    expect(at(3)).toEqual(["time"]);
    expect(at(4)).toEqual(["data"]);
    expect(at(5)).toEqual([""]);
    for (const e of errors) expect(e.message.length).toBeGreaterThan(0);

    expect(await storedIds(subject)).toEqual([]);
    expect(await total(METER, subject)).toBe(0);
    // The valid event was not half-stored: sending it alone now counts it.
    expect(await ingestOk([good])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await total(METER, subject)).toBe(9);
  });

  it("400 malformed_json for a body that is not JSON", async () => {
    const res = await api("POST", "/api/v1/events", { raw: '[{"specversion": "1.0",', type: "application/cloudevents-batch+json" });
    expectProblem(res, 400, "malformed_json");
  });

  it("400 for an empty body", async () => {
    const res = await api("POST", "/api/v1/events", { raw: "", type: "application/json" });
    expect(res.status, res.text).toBe(400);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
  });

  it("400 for an empty array", async () => {
    expectProblem(await ingest([]), 400, "validation_failed");
  });

  it("413 for more than 1,000 events, and nothing stored", async () => {
    const subject = uid("big");
    const batch = Array.from({ length: 1001 }, () => ev(subject, { data: { tokens: 1 } }));
    expectProblem(await ingest(batch), 413, "payload_too_large");
    expect(await storedIds(subject)).toEqual([]);
  });

  it("413 for a body over 1 MiB", async () => {
    const subject = uid("huge");
    const res = await ingest([ev(subject, { data: { tokens: 1, pad: "x".repeat(1024 * 1024) } })]);
    expectProblem(res, 413, "payload_too_large");
    expect(await storedIds(subject)).toEqual([]);
  });

  it("413 for a body over 1 MiB sent as a stream without Content-Length", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 20) return controller.close(); // 1.25 MiB of whitespace: valid JSON prefix, never finished
        sent++;
        controller.enqueue(chunk);
      },
    });
    const req = new Request("http://edgemeter.test/api/v1/events", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body,
    });
    expect(req.headers.get("content-length")).toBeNull();
    const res = await exports.default.fetch(req);
    expect(res.status).toBe(413);
    expect((await res.json<{ code: string }>()).code).toBe("payload_too_large");
  });
});

describe("well-formed events that cannot be metered are rejected, never counted", () => {
  it("reports events older than the 35-day retention window and more than 5 minutes in the future", async () => {
    const subject = uid("window");
    const now = Date.now();
    const batch = [
      ev(subject, { data: { tokens: 1 } }),
      ev(subject, { time: iso(now - 36 * DAY), data: { tokens: 100 } }),
      ev(subject, { time: iso(now + 10 * MINUTE), data: { tokens: 1000 } }),
      ev(subject, { time: iso(now - 34 * DAY), data: { tokens: 2 } }),
    ];
    const reply = await ingestOk(batch);
    expect(reply.accepted).toBe(2);
    expect(reply.duplicates).toBe(0);
    expect(reply.rejected.map((r) => [r.index, r.id, r.source])).toEqual([
      [1, batch[1]!.id, "test"],
      [2, batch[2]!.id, "test"],
    ]);
    expect(reply.rejected[0]!.reason).toMatch(/retention/);
    expect(reply.rejected[1]!.reason).toMatch(/future/);

    expect(await total(METER, subject)).toBe(3);
    expect(await storedIds(subject)).toEqual([batch[0]!.id, batch[3]!.id].sort());
  });

  it("rejects values a SUM meter cannot read (missing, null, non-numeric, object), counts numeric strings", async () => {
    const subject = uid("values");
    const batch = [
      ev(subject, { data: {} }),
      ev(subject, { data: { tokens: null } }),
      ev(subject, { data: { tokens: "abc" } }),
      ev(subject, { data: { tokens: {} } }),
      ev(subject, { data: null }),
      ev(subject, { data: { tokens: "12.5" } }),
      ev(subject, { data: { tokens: 2 } }),
    ];
    const reply = await ingestOk(batch);
    expect(reply.accepted).toBe(2);
    expect(reply.rejected.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
    expect(reply.rejected[0]!.reason).toMatch(/missing/);
    expect(reply.rejected[1]!.reason).toMatch(/null/);
    expect(reply.rejected[2]!.reason).toMatch(/not a number/);
    expect(reply.rejected[3]!.reason).toMatch(/not a number/);
    for (const r of reply.rejected) expect(r.reason).toContain(METER);

    expect(await total(METER, subject)).toBe(14.5);
    expect(await storedIds(subject)).toEqual([batch[5]!.id, batch[6]!.id].sort());

    // A rejected event was not stored, so the corrected resend is new, not a duplicate.
    expect(await ingestOk([{ ...batch[2]!, data: { tokens: 3 } }])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await total(METER, subject)).toBe(17.5);
  });

  it("points at request positions when a batch spans several subjects", async () => {
    const [s1, s2] = [uid("multi"), uid("multi")];
    const batch = [ev(s1, { data: { tokens: 1 } }), ev(s2, { data: { tokens: "x" } }), ev(s1, { data: {} }), ev(s2, { data: { tokens: 2 } }), ev(s1, { time: iso(Date.now() - 40 * DAY) })];
    const reply = await ingestOk(batch);
    expect(reply.accepted).toBe(2);
    expect(reply.rejected.map((r) => [r.index, r.id])).toEqual([1, 2, 4].map((i) => [i, batch[i]!.id]));
    expect(await total(METER, s1)).toBe(1);
    expect(await total(METER, s2)).toBe(2);
  });

  it("counts an event without a time at its arrival", async () => {
    const subject = uid("notime");
    const { time: _t, ...noTime } = ev(subject, { data: { tokens: 6 } });
    const before = Date.now();
    expect(await ingestOk([noTime, ev(subject, { time: null, data: { tokens: 1 } })])).toMatchObject({ accepted: 2, rejected: [] });
    expect(await total(METER, subject)).toBe(7);
    const [stored] = await listEvents(subject);
    expect(Date.parse(stored.event.time)).toBeGreaterThanOrEqual(before - 1000);
  });

  it("accepts CloudEvents extension attributes (strings, integers, booleans, null) and refuses what the spec does not allow", async () => {
    const subject = uid("ext");
    const ok = ev(subject, { data: { tokens: 2 }, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", partitionkey: "p1", sequence: 2 ** 31 - 1, replay: false, comexampleother: null });
    expect(await ingestOk([ok])).toMatchObject({ accepted: 1, rejected: [] });
    expect(await total(METER, subject)).toBe(2);
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ "Bad-Name": 1 }, "Bad-Name", /attribute name/],
      [{ traceId: "x" }, "traceId", /attribute name/],
      [{ myext: { a: 1 } }, "myext", /a 32-bit integer or a boolean/],
      [{ myext: [1] }, "myext", /a 32-bit integer or a boolean/],
      [{ myext: 1.5 }, "myext", /a 32-bit integer or a boolean/],
      [{ myext: 2 ** 31 }, "myext", /a 32-bit integer or a boolean/],
      [{ myext: "a\u0000b" }, "myext", /without control characters/],
      [{ data_base64: "AAEC" }, "data_base64", /binary data/],
    ];
    for (const [extra, field, message] of cases) {
      const res = await ingest([ev(subject, { data: { tokens: 100 }, ...extra })]);
      expectProblem(res, 400, "invalid_events");
      expect(res.body.errors, res.text).toEqual([{ index: 0, field, message: expect.stringMatching(message) }]);
    }
    expect(await total(METER, subject)).toBe(2);
  });

  it("accepts one event in CloudEvents' binary HTTP mode (ce-* headers, percent-encoded; the data as the body), checked like any event", async () => {
    const subject = uid("binary");
    const id = uid("bin");
    const headers = { "ce-specversion": "1.0", "ce-id": id, "ce-source": "sdk%20test", "ce-type": TYPE, "ce-subject": subject, "ce-time": iso(Date.now()), "ce-partitionkey": "p1" };
    const send = (h: Record<string, string>, body?: string, type: string | null = "application/json") => api("POST", "/api/v1/events", { raw: body ?? "", type, headers: h });
    const first = await send(headers, JSON.stringify({ tokens: 9, model: "gpt-4o" }));
    expect(first.status, first.text).toBe(202);
    expect(first.body).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await total(METER, subject)).toBe(9);
    const [stored] = await listEvents(subject);
    expect(stored.event).toMatchObject({ id, source: "sdk test", type: TYPE, subject, data: { tokens: 9, model: "gpt-4o" } });
    // The same (source, id) again, as a structured event: a duplicate.
    expect(await ingestOk([{ specversion: "1.0", id, source: "sdk test", type: TYPE, subject, data: { tokens: 9 } }])).toMatchObject({ accepted: 0, duplicates: 1 });

    const missing = await send({ "ce-specversion": "1.0", "ce-type": TYPE, "ce-subject": subject }, JSON.stringify({ tokens: 1 }));
    expectProblem(missing, 400, "invalid_events");
    expect(missing.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(["id", "source"]);
    expectProblem(await send({ ...headers, "ce-id": uid("bin") }, "tokens=1", "text/plain"), 415, "unsupported_media_type");
    expectProblem(await send({ ...headers, "ce-id": uid("bin"), "ce-source": "bad%zz" }, JSON.stringify({ tokens: 1 })), 400, "validation_failed");
    expectProblem(await send({ ...headers, "ce-id": uid("bin"), "ce-specversion": "0.3" }, JSON.stringify({ tokens: 1 })), 400, "invalid_events");
    expectProblem(await send({ ...headers, "ce-id": uid("bin") }, "[1,2]"), 400, "invalid_events");
    expectProblem(await send({ ...headers, "ce-id": uid("bin") }, JSON.stringify({ tokens: 1 }), "application/vnd.acme+json"), 415, "unsupported_media_type");
    // Sent twice, the attribute is ambiguous (fetch joins the values with ", "); a __proto__ attribute is refused as in structured mode.
    const twice = await exports.default.fetch(new Request("http://edgemeter.test/api/v1/events", {
      method: "POST",
      headers: [...Object.entries({ ...headers, "ce-id": uid("bin") }), ["ce-subject", "someone-else"], ["authorization", `Bearer ${ADMIN}`], ["content-type", "application/json"]],
      body: JSON.stringify({ tokens: 1 }),
    }));
    expect(twice.status).toBe(400);
    expect(((await twice.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe("ce-subject");
    expectProblem(await send({ ...headers, "ce-id": uid("bin"), "ce-__proto__": "x" }, JSON.stringify({ tokens: 1 })), 400, "invalid_events");
    expectProblem(await send({ ...headers, "ce-id": uid("bin"), "ce-note": "a%00b" }, JSON.stringify({ tokens: 1 })), 400, "invalid_events");
    // A CloudEvents media type means structured mode, whatever ce-* headers come along.
    const structured = { specversion: "1.0", id: uid("st"), source: "s", type: TYPE, subject, data: { tokens: 4 } };
    const mixed = await send({ ...headers, "ce-id": uid("bin") }, JSON.stringify(structured), "application/cloudevents+json");
    expect(mixed.status, mixed.text).toBe(202);
    expect(await total(METER, subject)).toBe(13);
  });

  it("accepts an event of a type no meter reads, without counting it anywhere", async () => {
    const subject = uid("unmetered");
    expect(await ingestOk([event({ type: "nobody_meters_this", subject, data: { tokens: "abc" } })])).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await total(METER, subject)).toBe(0);
  });
});
