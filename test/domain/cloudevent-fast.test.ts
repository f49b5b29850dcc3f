import { describe, expect, it } from "vitest";
import { cloudEventSchema, plainEvent, validateEvents } from "../../src/domain/cloudevent";

// plainEvent() is the schema's fast path on the ingest hot path: whenever it says yes, the zod
// schema must accept the event too and give back the same value. Checked over a grid of
// well-formed and malformed values of every attribute.
const strings = ["a", "", "x".repeat(256), "x".repeat(257), "ok id", "tab\there", "nul\u0000", "del\u007f", "c1\u0085", "\ud800", "a\udc00b", "😀", "é", 12, null, undefined, {}, []];
const times = [undefined, null, "2026-01-31T12:00:00Z", "2026-01-31T12:00:00.123456Z", "2026-02-30T00:00:00Z", "2026-01-31 12:00:00Z", "2026-01-31T12:00:00+05:30", "yesterday", 1700000000000, ""];
const contentTypes = [undefined, null, "application/json", "application/cloudevents+json; charset=utf-8", "APPLICATION/JSON", "text/plain", "", 5];
const schemas = [undefined, null, "", "https://example.com/schema", 3];
const datas = [undefined, null, {}, { tokens: 1, model: "m" }, [], "text", 5, { nested: { deep: [1, 2] } }, Object.create(null)];
const specs = ["1.0", "1.1", 1, undefined];

function* events(): Generator<Record<string, unknown>> {
  const base = { specversion: "1.0", id: "id-1", source: "src", type: "t", subject: "s" };
  yield base;
  for (const key of ["id", "source", "type", "subject"]) for (const v of strings) yield { ...base, [key]: v };
  for (const specversion of specs) yield { ...base, specversion };
  for (const time of times) for (const datacontenttype of contentTypes) yield { ...base, time, datacontenttype };
  for (const dataschema of schemas) for (const data of datas) yield { ...base, dataschema, data };
  yield { ...base, extension: "kept", other: { a: 1 } };
}

describe("plainEvent (the schema's fast path)", () => {
  it("never accepts what the schema refuses, and the accepted value is the schema's output", () => {
    let accepted = 0;
    let total = 0;
    for (const e of events()) {
      total++;
      const clean = Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined));
      if (!plainEvent(clean)) continue;
      accepted++;
      const r = cloudEventSchema.safeParse(clean);
      expect(r.success, JSON.stringify(clean)).toBe(true);
      expect(r.data).toEqual(clean);
    }
    // The grid exercises both answers.
    expect(accepted).toBeGreaterThan(50);
    expect(total - accepted).toBeGreaterThan(50);
  });

  it("leaves the wording of every refusal to the schema", () => {
    const { events, issues } = validateEvents([{ specversion: "1.0", id: "", source: "s", type: "t", subject: "x" }, { specversion: "1.0", id: "a", source: "s", type: "t", subject: "x", time: "nope" }]);
    expect(events).toEqual([]);
    expect(issues.map((i) => [i.index, i.field])).toEqual([
      [0, "id"],
      [1, "time"],
    ]);
  });
});

describe("the fast path's shape check", () => {
  const base = { specversion: "1.0", id: "id-1", source: "src", type: "t", subject: "s" };
  const nest = (levels: number): unknown => (levels === 0 ? 1 : { a: nest(levels - 1) });
  const shapes: Record<string, unknown>[] = [
    { ...base, data: nest(62) },
    { ...base, data: nest(63) },
    { ...base, data: nest(64) },
    { ...base, data: { list: [[[["deep"]]]] } },
    { ...base, data: JSON.parse('{"__proto__": {"x": 1}}') },
    { ...base, data: { ok: { fine: JSON.parse('{"__proto__": 1}') } } },
    JSON.parse('{"specversion":"1.0","id":"i","source":"s","type":"t","subject":"x","__proto__":1}'),
    { ...base, data: { "k\ud800": 1 } },
    { ...base, data: { v: ["a", "b\udfff"] } },
    { ...base, ext: "\ud83d" },
    { ...base, data: { emoji: "😀", n: null, b: true } },
  ];
  it("agrees with inspectJson on every shape (same acceptance, same wording)", async () => {
    const { inspectJson } = await import("../../src/domain/json-input");
    for (const item of shapes) {
      const { events, issues } = validateEvents([item]);
      const expected = inspectJson(item);
      if (expected === null) expect(events.length, JSON.stringify(item).slice(0, 80)).toBe(1);
      else expect(issues).toEqual([{ index: 0, field: expected.path, message: expected.message }]);
    }
  });
});
