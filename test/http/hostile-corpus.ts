/**
 * Bad requests, one per row, run by hostile.test.ts. Each row says what must come back: a problem
 * (status, stable code, and a pattern the human-readable detail must match), or — for well-formed
 * events that cannot be metered — a 202 that lists the event as rejected and counts nothing.
 * Paths may name the fixtures hostile.test.ts creates: {channel}, {rule}, {entitlement}.
 */

export const SUBJECT = "hostile-subject";
export const TYPE = "hostile";
export const METER = "hostile_tokens";
export const FEATURE = "hostile_feature";
/** A feature with no entitlement yet, so entitlement cases fail on their own fault, not on 409. */
export const SPARE_FEATURE = "hostile_spare";

export type Expect =
  | { status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415; code: string; detail: RegExp }
  | { rejected: RegExp };

export interface Case {
  name: string;
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  /** JSON-encoded (JSON.stringify escapes lone surrogates, so they arrive as `\ud800` escapes). */
  body?: unknown;
  /** Sent as is: text or bytes. */
  raw?: string | Uint8Array;
  /** Content-Type; default application/json when there is a body; null sends none. */
  type?: string | null;
  expect: Expect;
}

let n = 0;
/** A valid event for the fixture meter; `over` makes it bad. */
export function ev(over: Record<string, unknown> = {}): Record<string, unknown> {
  n++;
  return { specversion: "1.0", id: `hostile-${n}-${Math.random().toString(36).slice(2)}`, source: "corpus", type: TYPE, subject: SUBJECT, time: new Date().toISOString(), data: { tokens: 1, model: "m" }, ...over };
}

/** `{"a":{"a":…1…}}`, `depth` objects deep, built as text (no recursion anywhere). */
export const nested = (depth: number) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth);

const BATCH = "application/cloudevents-batch+json";
const SINGLE = "application/cloudevents+json";
const utf8 = (s: string) => new TextEncoder().encode(s);
const bytes = (...parts: (string | number[])[]) => {
  const chunks = parts.map((p) => (typeof p === "string" ? utf8(p) : new Uint8Array(p)));
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) (out.set(c, at), (at += c.length));
  return out;
};

const problem = (status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415, code: string, detail: RegExp): Expect => ({ status, code, detail });
const invalidEvent = (detail: RegExp) => problem(400, "invalid_events", detail);
const invalid = (detail: RegExp) => problem(400, "validation_failed", detail);
const malformed = (detail: RegExp = /not valid JSON|Malformed JSON|empty/) => problem(400, "malformed_json", detail);

const post = (path: string, body: unknown, expect: Expect, extra: Partial<Case> = {}): Omit<Case, "name"> => ({ method: "POST", path, body, expect, ...extra });
const ingestOne = (event: Record<string, unknown>, expect: Expect) => post("/api/v1/events", [event], expect, { type: BATCH });
const get = (path: string, expect: Expect): Omit<Case, "name"> => ({ method: "GET", path, expect });
const query = (qs: string, expect: Expect) => get(`/api/v1/meters/${METER}/query?subject=${SUBJECT}&${qs}`, expect);

const meter = (over: Record<string, unknown>) => ({ slug: "corpus_meter", eventType: TYPE, aggregation: "SUM", valueProperty: "$.tokens", ...over });
const entitlement = (over: Record<string, unknown>) => ({ type: "metered", featureKey: SPARE_FEATURE, usagePeriod: { interval: "MONTH" }, issueAfterReset: 10, ...over });
const ENTITLEMENTS = `/api/v1/subjects/${SUBJECT}/entitlements`;
const GRANTS = `${ENTITLEMENTS}/${FEATURE}/grants`;
const grant = (over: Record<string, unknown>) => ({ amount: 10, effectiveAt: new Date().toISOString(), expiration: { duration: "DAY", count: 1 }, ...over });
const rule = (over: Record<string, unknown>) => ({ type: "entitlements.balance.threshold", name: "corpus", channels: ["{channel}"], thresholds: [{ type: "usage_value", value: 1 }], ...over });
const channel = (over: Record<string, unknown>) => ({ type: "WEBHOOK", name: "corpus", url: "https://receiver.test/hooks/corpus", ...over });
const many = <T>(count: number, f: (i: number) => T) => Array.from({ length: count }, (_, i) => f(i));

const table: Record<string, Omit<Case, "name">> = {
  // ---- framing: JSON, content types, sizes ----
  "ingest: truncated JSON object": { method: "POST", path: "/api/v1/events", raw: '{"specversion":"1.0","id":"x","sou', type: SINGLE, expect: malformed(/not valid JSON/) },
  "ingest: truncated batch": { method: "POST", path: "/api/v1/events", raw: '[{"specversion":"1.0","id":"x"},', type: BATCH, expect: malformed(/not valid JSON/) },
  "ingest: trailing garbage after the JSON": { method: "POST", path: "/api/v1/events", raw: JSON.stringify(ev()) + "}}", type: SINGLE, expect: malformed(/not valid JSON/) },
  "ingest: single-quoted JSON": { method: "POST", path: "/api/v1/events", raw: "{'specversion':'1.0'}", type: SINGLE, expect: malformed(/not valid JSON/) },
  "ingest: JSON with a comment": { method: "POST", path: "/api/v1/events", raw: `[${JSON.stringify(ev())} /* one */]`, type: BATCH, expect: malformed(/not valid JSON/) },
  "ingest: empty body": { method: "POST", path: "/api/v1/events", raw: "", type: BATCH, expect: malformed(/empty/) },
  "ingest: whitespace-only body": { method: "POST", path: "/api/v1/events", raw: " \n\t ", type: BATCH, expect: malformed(/empty/) },
  "ingest: no Content-Type": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev()]), type: null, expect: problem(415, "unsupported_media_type", /cloudevents/) },
  "ingest: text/plain": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev()]), type: "text/plain", expect: problem(415, "unsupported_media_type", /cloudevents/) },
  "ingest: application/xml": { method: "POST", path: "/api/v1/events", raw: "<event/>", type: "application/xml", expect: problem(415, "unsupported_media_type", /cloudevents/) },
  "ingest: a latin1 charset": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev()]), type: `${BATCH}; charset=iso-8859-1`, expect: problem(415, "unsupported_media_type", /charset/) },
  "ingest: form encoded": { method: "POST", path: "/api/v1/events", raw: "id=1&type=x", type: "application/x-www-form-urlencoded", expect: problem(415, "unsupported_media_type", /cloudevents/) },
  "ingest: invalid UTF-8 bytes": { method: "POST", path: "/api/v1/events", raw: bytes(`[{"specversion":"1.0","id":"`, [0xff, 0xfe], `","source":"s","type":"${TYPE}","subject":"${SUBJECT}"}]`), type: BATCH, expect: malformed(/UTF-8/) },
  "ingest: UTF-8-encoded lone surrogate (CESU bytes ED A0 80)": { method: "POST", path: "/api/v1/events", raw: bytes(`[{"specversion":"1.0","id":"x","source":"s","type":"${TYPE}","subject":"`, [0xed, 0xa0, 0x80], `"}]`), type: BATCH, expect: malformed(/UTF-8/) },
  "ingest: overlong UTF-8 encoding of '/'": { method: "POST", path: "/api/v1/events", raw: bytes(`[{"specversion":"1.0","id":"`, [0xc0, 0xaf], `","source":"s","type":"${TYPE}","subject":"${SUBJECT}"}]`), type: BATCH, expect: malformed(/UTF-8/) },
  "ingest: body over 1 MiB": post("/api/v1/events", [ev({ data: { tokens: 1, pad: "x".repeat(1_100_000) } })], problem(413, "payload_too_large", /1048576/), { type: BATCH }),
  "ingest: 1,001 events": post("/api/v1/events", many(1001, () => ev()), problem(413, "payload_too_large", /1001 events; at most 1000/), { type: BATCH }),
  "ingest: empty batch": post("/api/v1/events", [], invalid(/no events/), { type: BATCH }),
  "ingest: an array as the single-event type": post("/api/v1/events", [ev()], invalid(/carries one event/), { type: SINGLE }),
  "ingest: an object as the batch type": post("/api/v1/events", ev(), invalid(/JSON array/), { type: BATCH }),
  "ingest: JSON null": { method: "POST", path: "/api/v1/events", raw: "null", type: SINGLE, expect: invalidEvent(/JSON object/) },
  "ingest: a bare number": { method: "POST", path: "/api/v1/events", raw: "42", type: "application/json", expect: invalidEvent(/JSON object/) },
  "ingest: a batch of strings": post("/api/v1/events", ["event"], invalidEvent(/JSON object/), { type: BATCH }),
  "ingest: arrays nested 100,000 deep": { method: "POST", path: "/api/v1/events", raw: "[".repeat(100_000) + "]".repeat(100_000), type: BATCH, expect: invalidEvent(/JSON object/) },
  "ingest: data nested 10,000 levels": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev({ data: "@" })]).replace('"@"', nested(10_000)), type: BATCH, expect: invalidEvent(/data.*nested/) },
  "ingest: data nested 65 levels": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev({ data: "@" })]).replace('"@"', nested(65)), type: BATCH, expect: invalidEvent(/data.*nested/) },

  // ---- CloudEvent attributes ----
  "event: data is an array": ingestOne(ev({ data: [1, 2] }), invalidEvent(/data: must be a JSON object/)),
  "event: data is a string": ingestOne(ev({ data: "tokens=1" }), invalidEvent(/data: must be a JSON object/)),
  "event: data is a number": ingestOne(ev({ data: 7 }), invalidEvent(/data: must be a JSON object/)),
  "event: specversion 0.3": ingestOne(ev({ specversion: "0.3" }), invalidEvent(/specversion: must be "1.0"/)),
  "event: specversion missing": ingestOne(ev({ specversion: undefined }), invalidEvent(/specversion/)),
  "event: id missing": ingestOne(ev({ id: undefined }), invalidEvent(/id:/)),
  "event: id empty": ingestOne(ev({ id: "" }), invalidEvent(/id: must be a non-empty string/)),
  "event: id is a number": ingestOne(ev({ id: 12345 }), invalidEvent(/id:/)),
  "event: id of 257 characters": ingestOne(ev({ id: "i".repeat(257) }), invalidEvent(/id: must be at most 256 characters/)),
  "event: subject of 100,000 characters": ingestOne(ev({ subject: "s".repeat(100_000) }), invalidEvent(/subject: must be at most 256/)),
  "event: source of 300 characters": ingestOne(ev({ source: "s".repeat(300) }), invalidEvent(/source: must be at most 256/)),
  "event: type of 300 characters": ingestOne(ev({ type: "t".repeat(300) }), invalidEvent(/type: must be at most 256/)),
  "event: subject null": ingestOne(ev({ subject: null }), invalidEvent(/subject:/)),
  "event: NUL byte in id": ingestOne(ev({ id: "a\u0000b" }), invalidEvent(/id: .*control character/)),
  "event: NUL byte in subject": ingestOne(ev({ subject: "hostile\u0000subject" }), invalidEvent(/subject: .*control character/)),
  "event: bell character in source": ingestOne(ev({ source: "svc\u0007" }), invalidEvent(/source: .*control character/)),
  "event: lone high surrogate as subject": ingestOne(ev({ subject: "\ud800" }), invalidEvent(/subject: .*surrogate/)),
  "event: lone low surrogate in id": ingestOne(ev({ id: "x\udc00y" }), invalidEvent(/id: .*surrogate/)),
  "event: reversed surrogate pair in type": ingestOne(ev({ type: "\udc00\ud800" }), invalidEvent(/type: .*surrogate/)),
  "event: lone surrogate in a data value": ingestOne(ev({ data: { tokens: 1, model: "\ud83d" } }), invalidEvent(/data.*surrogate/)),
  "event: lone surrogate in a data key": ingestOne(ev({ data: { tokens: 1, ["k\udfff"]: 1 } }), invalidEvent(/data.*surrogate/)),
  "event: __proto__ key in data": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev({ data: "@" })]).replace('"@"', '{"__proto__":{"tokens":999},"model":"m"}'), type: BATCH, expect: invalidEvent(/data.*__proto__/) },
  "event: nested __proto__ key in data": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev({ data: "@" })]).replace('"@"', '{"tokens":1,"meta":{"__proto__":{"admin":true}}}'), type: BATCH, expect: invalidEvent(/data.*__proto__/) },
  "event: datacontenttype text/xml": ingestOne(ev({ datacontenttype: "text/xml" }), invalidEvent(/datacontenttype/)),
  "event: one bad event fails the whole batch": post("/api/v1/events", [ev(), ev({ id: "" }), ev()], invalidEvent(/1 of 3 events are invalid; nothing was stored/), { type: BATCH }),

  // ---- event times ----
  "time: month 13": ingestOne(ev({ time: "2023-13-01T00:00:00Z" }), invalidEvent(/time: must be an RFC 3339/)),
  "time: space instead of T": ingestOne(ev({ time: "2023-01-01 00:00:00" }), invalidEvent(/time: must be an RFC 3339/)),
  "time: no time zone": ingestOne(ev({ time: "2023-01-01T00:00:00" }), invalidEvent(/time: must be an RFC 3339/)),
  "time: date only": ingestOne(ev({ time: "2023-01-01" }), invalidEvent(/time: must be an RFC 3339/)),
  "time: leap second 23:59:60": ingestOne(ev({ time: "2016-12-31T23:59:60Z" }), invalidEvent(/time: must be an RFC 3339/)),
  "time: February 30": ingestOne(ev({ time: "2023-02-30T00:00:00Z" }), invalidEvent(/time: must be an RFC 3339/)),
  "time: offset +24:00": ingestOne(ev({ time: "2023-01-01T00:00:00+24:00" }), invalidEvent(/time: must be an RFC 3339/)),
  "time: epoch seconds": ingestOne(ev({ time: 1700000000 }), invalidEvent(/time:/)),
  "time: year 0000 (well-formed, outside the window)": ingestOne(ev({ time: "0000-01-01T00:00:00Z" }), { rejected: /0000-01-01T00:00:00.000Z is older than the retention window/ }),
  "time: year 0099 (well-formed, outside the window)": ingestOne(ev({ time: "0099-06-01T00:00:00Z" }), { rejected: /0099-06-01T00:00:00.000Z is older than the retention window/ }),
  "time: year 9999 (far future)": ingestOne(ev({ time: "9999-12-31T23:59:59Z" }), { rejected: /9999-12-31T23:59:59.000Z is more than 5 minutes in the future/ }),

  // ---- values a meter cannot read: accepted requests, nothing counted ----
  'value: the string "NaN"': ingestOne(ev({ data: { tokens: "NaN", model: "m" } }), { rejected: /value is not a number: "NaN"/ }),
  'value: the string "Infinity"': ingestOne(ev({ data: { tokens: "Infinity", model: "m" } }), { rejected: /value is not a number: "Infinity"/ }),
  'value: the string "1e400"': ingestOne(ev({ data: { tokens: "1e400", model: "m" } }), { rejected: /value is not finite: "1e400"/ }),
  "value: the JSON number 1e400": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev({ data: "@" })]).replace('"@"', '{"tokens":1e400,"model":"m"}'), type: BATCH, expect: invalidEvent(/data.*64-bit float/) },
  "event: the JSON number -1e400 in data no meter reads": { method: "POST", path: "/api/v1/events", raw: JSON.stringify([ev({ data: "@" })]).replace('"@"', '{"tokens":1,"model":"m","other":-1e400}'), type: BATCH, expect: invalidEvent(/data.*64-bit float/) },
  'value: the string " 12"': ingestOne(ev({ data: { tokens: " 12", model: "m" } }), { rejected: /value is not a number/ }),
  'value: the hex string "0x10"': ingestOne(ev({ data: { tokens: "0x10", model: "m" } }), { rejected: /value is not a number/ }),
  "value: an array": ingestOne(ev({ data: { tokens: [1], model: "m" } }), { rejected: /value is not a number: array/ }),
  "value: true": ingestOne(ev({ data: { tokens: true, model: "m" } }), { rejected: /value is not a number: true/ }),
  "value: 1e308 (finite, but two of them overflow a sum)": ingestOne(ev({ data: { tokens: 1e308, model: "m" } }), { rejected: /value is beyond ±1e\+100/ }),
  'value: the string "-1e101"': ingestOne(ev({ data: { tokens: "-1e101", model: "m" } }), { rejected: /value is beyond ±1e\+100/ }),
  "value: missing": ingestOne(ev({ data: { model: "m" } }), { rejected: /value is missing at \$\.tokens/ }),
  "value: data null": ingestOne(ev({ data: null }), { rejected: /value is missing/ }),

  // ---- meter definitions ----
  "meter: no Content-Type": { method: "POST", path: "/api/v1/meters", raw: JSON.stringify(meter({})), type: null, expect: problem(415, "unsupported_media_type", /application\/json/) },
  "meter: text/plain": { method: "POST", path: "/api/v1/meters", raw: JSON.stringify(meter({})), type: "text/plain", expect: problem(415, "unsupported_media_type", /application\/json/) },
  "meter: truncated JSON": { method: "POST", path: "/api/v1/meters", raw: '{"slug":"corpus_meter","eventType":', expect: malformed() },
  "meter: empty body": { method: "POST", path: "/api/v1/meters", raw: "", expect: malformed() },
  "meter: invalid UTF-8 in the name": { method: "POST", path: "/api/v1/meters", raw: bytes('{"slug":"corpus_meter","name":"', [0xc3, 0x28], '","eventType":"x","aggregation":"COUNT"}'), expect: malformed(/UTF-8/) },
  "meter: body over 1 MiB": post("/api/v1/meters", meter({ description: "d".repeat(1_100_000) }), problem(413, "payload_too_large", /1048576/)),
  "meter: an array body": post("/api/v1/meters", [meter({})], invalid(/expected object/)),
  "meter: slug with capitals and a space": post("/api/v1/meters", meter({ slug: "Bad Slug" }), invalid(/slug/)),
  "meter: slug of 65 characters": post("/api/v1/meters", meter({ slug: "a".repeat(65) }), invalid(/slug/)),
  "meter: unknown aggregation": post("/api/v1/meters", meter({ aggregation: "MEDIAN" }), invalid(/aggregation/)),
  "meter: COUNT with a valueProperty": post("/api/v1/meters", meter({ aggregation: "COUNT" }), invalid(/valueProperty: meter value property is not allowed/)),
  "meter: SUM without a valueProperty": post("/api/v1/meters", meter({ valueProperty: undefined }), invalid(/valueProperty: meter value property is required/)),
  "meter: valueProperty without $": post("/api/v1/meters", meter({ valueProperty: "tokens" }), invalid(/valueProperty: must be a JSONPath/)),
  "meter: recursive descent $..tokens": post("/api/v1/meters", meter({ valueProperty: "$..tokens" }), invalid(/valueProperty/)),
  "meter: wildcard $.items[*].n": post("/api/v1/meters", meter({ valueProperty: "$.items[*].n" }), invalid(/valueProperty/)),
  "meter: filter expression": post("/api/v1/meters", meter({ valueProperty: "$.items[?(@.n > 1)]" }), invalid(/valueProperty/)),
  "meter: unterminated bracket": post("/api/v1/meters", meter({ valueProperty: "$['tokens" }), invalid(/valueProperty/)),
  "meter: groupBy key with a dash": post("/api/v1/meters", meter({ groupBy: { "bad-key": "$.m" } }), invalid(/groupBy/)),
  "meter: groupBy key __proto__": { method: "POST", path: "/api/v1/meters", raw: JSON.stringify(meter({ groupBy: "@" })).replace('"@"', '{"__proto__":"$.model"}'), expect: invalid(/__proto__/) },
  "meter: 21 groupBy keys": post("/api/v1/meters", meter({ groupBy: Object.fromEntries(many(21, (i) => [`k${i}`, `$.k${i}`])) }), invalid(/at most 20 group by keys/)),
  "meter: groupBy equal to valueProperty": post("/api/v1/meters", meter({ groupBy: { t: "$.tokens" } }), invalid(/cannot be the same as the value property/)),
  "meter: eventFrom not a date": post("/api/v1/meters", meter({ eventFrom: "yesterday" }), invalid(/eventFrom/)),
  "meter: nested metadata": post("/api/v1/meters", meter({ metadata: { a: { b: "c" } } }), invalid(/metadata/)),
  "meter: duplicate slug": post("/api/v1/meters", meter({ slug: METER }), problem(409, "conflict", /already exists/)),
  "meter: change the aggregation of an existing meter": { method: "PUT", path: `/api/v1/meters/${METER}`, body: { aggregation: "MAX" }, expect: invalid(/aggregation cannot be changed/) },

  // ---- meter queries ----
  "query: windowSize=WEEK": query("windowSize=WEEK", invalid(/windowSize/)),
  "query: from after to": query("from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", invalid(/from: must be before to/)),
  "query: from not a date": query("from=last-tuesday", invalid(/from: must be an RFC 3339/)),
  "query: from without a zone": query("from=2024-01-01T00:00:00", invalid(/from: must be an RFC 3339/)),
  "query: groupBy unknown": query("groupBy=region", invalid(/groupBy: region is not a group by key/)),
  "query: groupBy __proto__": query("groupBy=__proto__", invalid(/groupBy: __proto__ is not a group by key/)),
  "query: filterGroupBy[constructor] (an Object.prototype member)": query("filterGroupBy[constructor]=x", invalid(/filterGroupBy: constructor is not a group by key/)),
  "query: filterGroupBy[hasOwnProperty]": query("filterGroupBy[hasOwnProperty]=x", invalid(/filterGroupBy: hasOwnProperty is not a group by key/)),
  "query: filterGroupBy on __proto__": query("filterGroupBy[__proto__]=x", invalid(/filterGroupBy: __proto__ is not a group by key/)),
  "query: time zone Mars/Olympus": query("windowTimeZone=Mars/Olympus", invalid(/windowTimeZone: unknown IANA time zone/)),
  "query: time zone +05:30": query("windowTimeZone=%2B05:30", invalid(/windowTimeZone: unknown IANA time zone/)),
  "query: empty time zone": query("windowTimeZone=", invalid(/windowTimeZone/)),
  // Malformed %-escapes: hono read them as the raw text, URLSearchParams as U+FFFD (another subject's usage).
  "query: subject with an overlong escape %C0%AF": get(`/api/v1/meters/${METER}/query?subject=%C0%AF`, problem(400, "bad_request", /malformed %-escape/)),
  "events: subject %ED%A0%80 (an escaped lone surrogate)": get(`/api/v1/events?subject=%ED%A0%80`, problem(400, "bad_request", /malformed %-escape/)),
  "entitlement: subject %ZZ in the path": post(`/api/v1/subjects/%ZZ/entitlements`, entitlement({}), problem(400, "bad_request", /malformed %-escape/)),
  "query: 101 subjects": get(`/api/v1/meters/${METER}/query?${many(101, (i) => `subject=s${i}`).join("&")}`, invalid(/subject/)),
  "query: unknown meter": get(`/api/v1/meters/no_such_meter/query?subject=${SUBJECT}`, problem(404, "not_found", /no meter no_such_meter/)),
  "query: POST with text/plain": { method: "POST", path: `/api/v1/meters/${METER}/query`, raw: JSON.stringify({ subject: [SUBJECT] }), type: "text/plain", expect: problem(415, "unsupported_media_type", /application\/json/) },
  "query: POST with malformed JSON": { method: "POST", path: `/api/v1/meters/${METER}/query`, raw: "{subject:", expect: malformed() },
  "events: empty subject": get("/api/v1/events?subject=", invalid(/subject/)),
  "events: limit=0": get(`/api/v1/events?subject=${SUBJECT}&limit=0`, invalid(/limit/)),
  "events: limit=1000": get(`/api/v1/events?subject=${SUBJECT}&limit=1000`, invalid(/limit/)),
  "events: limit=abc": get(`/api/v1/events?subject=${SUBJECT}&limit=abc`, invalid(/limit/)),
  "events: from not a date": get(`/api/v1/events?subject=${SUBJECT}&from=0`, invalid(/from must be an RFC 3339/)),

  // ---- features, entitlements, grants ----
  "feature: key with capitals": post("/api/v1/features", { key: "Bad", name: "x" }, invalid(/key/)),
  "feature: unknown meter": post("/api/v1/features", { key: "corpus_f", name: "x", meterSlug: "no_such_meter" }, invalid(/meterSlug: no meter no_such_meter/)),
  "feature: filter on a key the meter lacks": post("/api/v1/features", { key: "corpus_f", name: "x", meterSlug: METER, meterGroupByFilters: { region: "eu" } }, invalid(/region is not a group by key/)),
  "feature: filter on toString, a key the meter lacks (an Object.prototype member)": post("/api/v1/features", { key: "corpus_f", name: "x", meterSlug: METER, meterGroupByFilters: { toString: "x" } }, invalid(/meterGroupByFilters.toString: toString is not a group by key/)),
  "feature: advanced filter on constructor, a key the meter lacks": post("/api/v1/features", { key: "corpus_f", name: "x", meterSlug: METER, advancedMeterGroupByFilters: { constructor: { $eq: "x" } } }, invalid(/advancedMeterGroupByFilters.constructor: constructor is not a group by key/)),
  "feature: unitCost": post("/api/v1/features", { key: "corpus_f", name: "x", unitCost: { type: "manual", amount: "1" } }, invalid(/unitCost: not supported/)),
  "entitlement: negative issueAfterReset": post(ENTITLEMENTS, entitlement({ issueAfterReset: -1 }), invalid(/issueAfterReset/)),
  "entitlement: issueAfterReset as a string": post(ENTITLEMENTS, entitlement({ issueAfterReset: "100" }), invalid(/issueAfterReset/)),
  "entitlement: issueAfterReset 1e400": { method: "POST", path: ENTITLEMENTS, raw: JSON.stringify(entitlement({ issueAfterReset: "@" })).replace('"@"', "1e400"), expect: invalid(/issueAfterReset/) },
  "entitlement: issueAfterReset 1e308": post(ENTITLEMENTS, entitlement({ issueAfterReset: 1e308 }), invalid(/issueAfterReset: must be at most 1e\+100/)),
  "entitlement: measureUsageFrom in year 0001 (740,000 daily periods ago)": post(ENTITLEMENTS, entitlement({ usagePeriod: { interval: "DAY" }, measureUsageFrom: "0001-01-01T00:00:00Z" }), invalid(/measureUsageFrom .* is more than 1000 usage periods/)),
  "entitlement: measureUsageFrom in the future": post(ENTITLEMENTS, entitlement({ measureUsageFrom: "9999-01-01T00:00:00Z" }), invalid(/measureUsageFrom .* is in the future/)),
  "entitlement: unknown interval": post(ENTITLEMENTS, entitlement({ usagePeriod: { interval: "FORTNIGHT" } }), invalid(/usagePeriod.interval: one of DAY, WEEK, MONTH, YEAR/)),
  "entitlement: ISO interval PT1H": post(ENTITLEMENTS, entitlement({ usagePeriod: { interval: "PT1H" } }), invalid(/usagePeriod.interval/)),
  "entitlement: anchor not a date": post(ENTITLEMENTS, entitlement({ usagePeriod: { interval: "DAY", anchor: "soon" } }), invalid(/usagePeriod.anchor/)),
  "entitlement: unknown feature": post(ENTITLEMENTS, entitlement({ featureKey: "no_such_feature" }), problem(404, "not_found", /no_such_feature/)),
  "entitlement: unknown type": post(ENTITLEMENTS, entitlement({ type: "unlimited" }), invalid(/type/)),
  "entitlement: static config that is not JSON": post(ENTITLEMENTS, { type: "static", featureKey: SPARE_FEATURE, config: "{not json" }, invalid(/config: must be the JSON text of an object/)),
  "entitlement: NUL byte in the subject": post(`/api/v1/subjects/a%00b/entitlements`, entitlement({}), invalid(/subjectIdOrKey: .*control character/)),
  "entitlement: subject of 300 characters": post(`/api/v1/subjects/${"s".repeat(300)}/entitlements`, entitlement({}), invalid(/subjectIdOrKey/)),
  "grant: amount 0": post(GRANTS, grant({ amount: 0 }), invalid(/amount: must be a positive number/)),
  "grant: negative amount": post(GRANTS, grant({ amount: -5 }), invalid(/amount: must be a positive number/)),
  "grant: amount 1e400": { method: "POST", path: GRANTS, raw: JSON.stringify(grant({ amount: "@" })).replace('"@"', "1e400"), expect: invalid(/amount/) },
  "grant: amount 1e308": post(GRANTS, grant({ amount: 1e308 }), invalid(/amount: must be at most 1e\+100/)),
  "grant: effectiveAt before the current period": post(GRANTS, grant({ effectiveAt: "0001-01-01T00:00:00Z" }), invalid(/effectiveAt .* is before the current/)),
  "grant: unknown expiration duration": post(GRANTS, grant({ expiration: { duration: "CENTURY", count: 1 } }), invalid(/expiration.duration/)),
  "grant: recurrence": post(GRANTS, grant({ recurrence: { interval: "DAY" } }), invalid(/recurring grants are not supported/)),
  "grant: priority 0": post(GRANTS, grant({ priority: 0 }), invalid(/priority/)),

  // ---- notification channels and rules ----
  "channel: not a URL": post("/api/v1/notification/channels", channel({ url: "not a url" }), invalid(/url: not an absolute URL/)),
  "channel: ftp URL": post("/api/v1/notification/channels", channel({ url: "ftp://example.com/hook" }), invalid(/url: only http and https/)),
  "channel: javascript: URL": post("/api/v1/notification/channels", channel({ url: "javascript:alert(1)" }), invalid(/url: only http and https/)),
  "channel: URL of 3,000 characters": post("/api/v1/notification/channels", channel({ url: "https://example.com/" + "a".repeat(3000) }), invalid(/url/)),
  "channel: reserved custom header": post("/api/v1/notification/channels", channel({ customHeaders: { "webhook-signature": "v1,forged" } }), invalid(/customHeaders.webhook-signature/)),
  "channel: 1,000 custom headers": post("/api/v1/notification/channels", channel({ customHeaders: Object.fromEntries(many(1000, (i) => [`x-h${i}`, "v"])) }), invalid(/customHeaders/)),
  "channel: short signing secret": post("/api/v1/notification/channels", channel({ signingSecret: "short" }), invalid(/signingSecret/)),
  "rule: no thresholds": post("/api/v1/notification/rules", rule({ thresholds: [] }), invalid(/thresholds/)),
  "rule: 11 thresholds": post("/api/v1/notification/rules", rule({ thresholds: many(11, (i) => ({ type: "usage_value", value: i + 1 })) }), invalid(/thresholds/)),
  "rule: negative threshold": post("/api/v1/notification/rules", rule({ thresholds: [{ type: "usage_value", value: -1 }] }), invalid(/thresholds.0.value/)),
  "rule: threshold 1e308": post("/api/v1/notification/rules", rule({ thresholds: [{ type: "usage_value", value: 1e308 }] }), invalid(/thresholds.0.value: must be at most/)),
  "rule: unknown threshold type": post("/api/v1/notification/rules", rule({ thresholds: [{ type: "MAGIC", value: 1 }] }), invalid(/thresholds.0.type/)),
  "rule: unknown channel": post("/api/v1/notification/rules", rule({ channels: ["01ARZ3NDEKTSV4RRFFQ69G5FAV"] }), invalid(/channels.0: no notification channel/)),
  "rule: unknown feature": post("/api/v1/notification/rules", rule({ features: ["no_such_feature"] }), invalid(/features.0: no feature no_such_feature/)),
  "rule: unknown type": post("/api/v1/notification/rules", rule({ type: "invoice.created" }), invalid(/type/)),

  // ---- check, keys, portal tokens ----
  "check: negative amount": post("/api/v1/check", { subject: SUBJECT, feature: FEATURE, amount: -1 }, invalid(/amount: must be a positive number/)),
  "check: amount 1e308": post("/api/v1/check", { subject: SUBJECT, feature: FEATURE, amount: 1e308 }, invalid(/amount: must be at most 1e\+100/)),
  "check: data nested 100 levels": { method: "POST", path: "/api/v1/check", raw: JSON.stringify({ subject: SUBJECT, feature: FEATURE, event: ev({ data: "@" }) }).replace('"@"', nested(100)), expect: invalid(/event: is nested more than 64 levels/) },
  "check: __proto__ in event data": { method: "POST", path: "/api/v1/check", raw: JSON.stringify({ subject: SUBJECT, feature: FEATURE, event: ev({ data: "@" }) }).replace('"@"', '{"__proto__":{"tokens":5}}'), expect: invalid(/__proto__/) },
  "check: invalid event": post("/api/v1/check", { subject: SUBJECT, feature: FEATURE, event: ev({ time: "2023-13-01T00:00:00Z" }) }, problem(400, "validation_failed", /event.time/)),
  "key: no scopes": post("/api/v1/keys", { name: "x", scopes: [] }, invalid(/scopes/)),
  "key: namespace with capitals": post("/api/v1/keys", { name: "x", scopes: ["read"], namespace: "Other" }, invalid(/namespace/)),
  "portal token: no subject": post("/api/v1/portal/tokens", {}, invalid(/subject/)),
  "portal token: bad meter slug": post("/api/v1/portal/tokens", { subject: SUBJECT, allowedMeterSlugs: ["Not A Slug"] }, invalid(/allowedMeterSlugs/)),
  "portal token: expiry in the past": post("/api/v1/portal/tokens", { subject: SUBJECT, expiresAt: "2020-01-01T00:00:00Z" }, invalid(/expiresAt: must be in the future/)),
  "portal token: lone surrogate subject": post("/api/v1/portal/tokens", { subject: "\udead" }, invalid(/subject: .*surrogate/)),
  "portal token: invalidate with neither id nor subject": post("/api/v1/portal/tokens/invalidate", {}, invalid(/id or subject/)),
};

export const corpus: Case[] = Object.entries(table).map(([name, c]) => ({ name, ...c }));
