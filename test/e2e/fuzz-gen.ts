// Request generation for fuzz.e2e.test.ts: a seeded PRNG and the mutations of bodies, query strings
// and path parameters, judged by the schema checker of fuzz-schema.ts. Everything here is pure (no
// I/O), so a seed gives the same requests on every run.
import { deref, isObject, objectSchema, valid, type Schema } from "./fuzz-schema";

/** mulberry32: tiny, fast, good enough to pick mutations; the same seed gives the same sweep. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const shuffle = <T>(xs: readonly T[]) => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
  return { next, int, shuffle, sample: <T>(xs: readonly T[], k: number) => shuffle(xs).slice(0, k) };
}
export type Rng = ReturnType<typeof prng>;

/** Does `raw` hold a %-escape that is not two hex digits, or escapes that are not UTF-8 (URI malformed)? */
export const malformedEscape = (raw: string) => !isDecodable(raw);
function isDecodable(raw: string): boolean {
  try {
    decodeURIComponent(raw);
    return true;
  } catch {
    return false;
  }
}

/** Decoded the way a lenient server decodes: a malformed escape stays as written. */
export function decoded(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

// ---------------------------------------------------------------- JSON text with raw fragments

const HOLE = (i: number) => `\u0001fz${i}\u0001`;
/**
 * JSON text of `value` in which each string HOLE(i) is replaced by `fragments[i]` as written, so the text
 * can carry what JSON.stringify cannot write: 1e309, -0, 2^53+1, duplicate keys.
 */
export function jsonText(value: unknown, fragments: string[]): string {
  let text = JSON.stringify(value);
  fragments.forEach((f, i) => (text = text.replace(JSON.stringify(HOLE(i)), f)));
  return text;
}

/** `{"a":{"a":…1…}}`, `depth` objects deep. */
export const nested = (depth: number) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth);

/** What the gateway must refuse whatever the route (README "Hostile input"), or null. Never recurses. */
export function hostileJson(v: unknown): string | null {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length) {
    const [x, depth] = stack.pop()!;
    if (typeof x === "string" && !x.isWellFormed()) return "unpaired surrogate";
    if (typeof x === "number" && !Number.isFinite(x)) return "number beyond a 64-bit float";
    if (typeof x !== "object" || x === null) continue;
    if (depth > 64) return "nested more than 64 levels";
    for (const [k, y] of Object.entries(x)) {
      if (k === "__proto__") return "__proto__ key";
      if (!k.isWellFormed()) return "unpaired surrogate in a key";
      stack.push([y, depth + 1]);
    }
  }
  return null;
}

// ---------------------------------------------------------------- mutations

/** `sameAs`: the status another request of the sweep got (sent before it), e.g. the same body with a plain key. */
export type Expect = { status: number } | { sameAs: string } | "refuse" | "any" | "ok";
export interface BodyMutation { kind: string; text: string | Uint8Array; contentType?: string | null; headers?: Record<string, string>; expect: Expect }

const utf8 = (s: string) => new TextEncoder().encode(s);
function splice(text: string, at: number, bytes: number[]): Uint8Array {
  const head = utf8(text.slice(0, at));
  const tail = utf8(text.slice(at));
  const out = new Uint8Array(head.length + bytes.length + tail.length);
  out.set(head);
  out.set(bytes, head.length);
  out.set(tail, head.length + bytes.length);
  return out;
}

/** Replacement values, as JSON text: the ones JSON.stringify can write and the ones it cannot. */
export function valueFragments(original: unknown, unique: () => string): [string, string][] {
  return [
    ["a number", "123"],
    ["a string", JSON.stringify(unique())],
    ["a boolean", "true"],
    ["an empty array", "[]"],
    ["an empty object", "{}"],
    ["null", "null"],
    ["an empty string", '""'],
    ["a 100,000-character string", JSON.stringify("x".repeat(100_000))],
    ["1e309", "1e309"],
    ["-1e309", "-1e309"],
    ["-0", "-0"],
    ["2^53+1", "9007199254740993"],
    ["-1", "-1"],
    ["1.5", "1.5"],
    ["5e-324", "5e-324"],
    ["unicode text", JSON.stringify(`ü😀\u200b${unique()}`)],
    ["a NUL character", JSON.stringify(`a\u0000${unique()}`)],
    ["a lone surrogate", '"\\ud800x"'],
    ["an object with __proto__", '{"__proto__":{"polluted":1}}'],
    ["an object with constructor", '{"constructor":{"prototype":{"polluted":1}}}'],
    ["70 nested objects", nested(70)],
    ["the value inside an array", `[${JSON.stringify(original)}]`],
  ];
}

/** Edge dates, as text: impossible ones, ones at and beyond the ends of JavaScript's Date, odd forms. */
export function dateTexts(now = Date.now()): [string, string][] {
  return [
    ["month 13", "2023-13-01T00:00:00Z"],
    ["February 30", "2024-02-30T00:00:00Z"],
    ["a leap second", "2016-12-31T23:59:60Z"],
    ["year 0000", "0000-01-01T00:00:00Z"],
    ["year 0001", "0001-01-01T00:00:00Z"],
    ["year 9999", "9999-12-31T23:59:59Z"],
    ["the last JS date", "+275760-09-13T00:00:00.000Z"],
    ["a negative year", "-000001-01-01T00:00:00Z"],
    ["offset +24:00", "2024-01-01T00:00:00+24:00"],
    ["nanoseconds", "2024-01-01T00:00:00.123456789Z"],
    ["a date only", "2024-01-01"],
    ["epoch seconds as text", "1700000000"],
    ["a minute ahead", new Date(now + 60_000).toISOString()],
    ["ten minutes ahead", new Date(now + 600_000).toISOString()],
    ["400 days ago", new Date(now - 400 * 86_400_000).toISOString()],
    ["lowercase t and z", "2024-01-01t00:00:00z"],
  ];
}
const looksLikeDate = (v: unknown) => typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v);

/** Paths of the fields of `body` to mutate: top-level keys, one level into objects, the first array item. */
export function fieldPaths(body: unknown): (string | number)[][] {
  const out: (string | number)[][] = [];
  if (!isObject(body)) return out;
  for (const [k, v] of Object.entries(body)) {
    out.push([k]);
    if (isObject(v)) for (const k2 of Object.keys(v)) out.push([k, k2]);
    else if (Array.isArray(v) && v.length) out.push([k, 0]);
  }
  return out;
}

/** Declared properties the baseline leaves out (top level and one object down), with their schemas. */
export function absentFields(doc: Schema, schema: Schema, base: unknown): [(string | number)[], Schema][] {
  const out: [(string | number)[], Schema][] = [];
  const walk = (sch: Schema | undefined, value: unknown, path: (string | number)[], depth: number) => {
    const o = objectSchema(doc, sch, value);
    if (!o || !isObject(value)) return;
    for (const [k, ps] of Object.entries<Schema>(o.properties)) {
      if (!Object.hasOwn(value, k)) out.push([[...path, k], deref(doc, ps)]);
      else if (depth === 0) walk(ps, value[k], [...path, k], 1);
    }
  };
  walk(schema, base, [], 0);
  return out;
}

/** Values for a property the baseline leaves out: its enum values and edge dates, beside the generic ones. */
export function valuesFor(doc: Schema, ps: Schema, unique: () => string, rng: Rng, k: number): [string, string][] {
  const s = deref(doc, ps);
  const out: [string, string][] = rng.sample(valueFragments(null, unique), k);
  const enums = [s, ...(s.anyOf ?? []).map((x: Schema) => deref(doc, x))].flatMap((x) => x.enum ?? []);
  for (const e of enums) out.push([`${JSON.stringify(e)}`, JSON.stringify(e)]);
  const dated = s.format === "date-time" || (s.anyOf ?? []).some((x: Schema) => deref(doc, x).format === "date-time");
  if (dated) out.push(...rng.sample(dateTexts(), k + 2).map(([n, d]) => [n, JSON.stringify(d)] as [string, string]), ["the last JS date", JSON.stringify("+275760-09-13T00:00:00.000Z")]);
  if (s.type === "number" || s.type === "integer") out.push(["1e100", "1e100"], ["the largest double", "1.7976931348623157e308"], ["1e-300", "1e-300"]);
  return out;
}

const clone = <T>(v: T): T => structuredClone(v);
function setAt(root: any, path: (string | number)[], value: unknown) {
  let o = root;
  for (const k of path.slice(0, -1)) o = o[k];
  o[path.at(-1)!] = value;
}
function deleteAt(root: any, path: (string | number)[]) {
  let o = root;
  for (const k of path.slice(0, -1)) o = o[k];
  if (Array.isArray(o)) o.splice(Number(path.at(-1)), 1);
  else delete o[path.at(-1)!];
}
const getAt = (root: any, path: (string | number)[]) => path.reduce((o, k) => o?.[k], root);

/** The expectation for a body the gateway will read as `text` (a JSON media type, UTF-8). */
export function expectFor(doc: Schema, schema: Schema, text: string): Expect {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { status: 400 };
  }
  if (hostileJson(parsed)) return { status: 400 };
  return valid(doc, schema, parsed) ? "any" : "refuse";
}

/**
 * Mutations of one JSON body. `fresh()` gives a new valid baseline each time (new ids, slugs), so a
 * mutation that turns out to be valid input does not collide with an earlier one; `unique()` names.
 * `perField` values are sampled per field; the hard ones (1e309, __proto__, …) are each placed on some field.
 */
export function bodyMutations(doc: Schema, schema: Schema, fresh: () => unknown, unique: () => string, rng: Rng, perField: number): (() => BodyMutation)[] {
  const base = fresh();
  const out: (() => BodyMutation)[] = [];
  const text = (b: unknown, frags: string[] = []) => jsonText(b, frags);
  const withExpect = (kind: string, t: string): BodyMutation => ({ kind, text: t, expect: expectFor(doc, schema, t) });
  // One object to mutate: the body, or the last item when the body is an array (subject upserts, batches),
  // so the valid items before it would be stored if the gateway wrote item by item.
  const inner = (b: any) => (Array.isArray(b) ? b[b.length - 1] : b);
  const at = (path: (string | number)[]) => (Array.isArray(base) ? [base.length - 1, ...path] : path);

  const paths = fieldPaths(inner(base));
  const hard = new Set(["1e309", "-1e309", "a lone surrogate", "an object with __proto__", "70 nested objects"]);
  const hardAssigned = new Map<string, number>();
  [...hard].forEach((h, i) => paths.length && hardAssigned.set(h, i % paths.length));
  paths.forEach((p, pi) => {
    const original = getAt(inner(base), p);
    const frags = valueFragments(original, unique);
    const chosen = rng.sample(frags.filter(([n]) => !hard.has(n)), perField);
    // Dates get edge dates too: a sample, the ends of Date's range always.
    if (looksLikeDate(original)) {
      const dates = dateTexts().map(([n, d]) => [n, JSON.stringify(d)] as [string, string]);
      chosen.push(...dates.filter(([n]) => n === "the last JS date" || n === "a negative year"), ...rng.sample(dates, perField));
    }
    // Enumerations: another case, and a neighbour's value.
    if (typeof original === "string" && /^[A-Z_]+$/.test(original)) chosen.push(["lowercase", JSON.stringify(original.toLowerCase())], ["padded", JSON.stringify(` ${original} `)]);
    for (const [name, frag] of frags) if (hard.has(name) && hardAssigned.get(name) === pi) chosen.push([name, frag]);
    for (const [name, frag] of chosen) {
      out.push(() => {
        const b = fresh();
        setAt(b, at(p), HOLE(0));
        return withExpect(`${p.join(".")} = ${name}`, text(b, [frag]));
      });
    }
    out.push(() => {
      const b = fresh();
      deleteAt(b, at(p));
      return withExpect(`${p.join(".")} missing`, text(b));
    });
    // Duplicate keys: JSON.parse keeps the last; whichever the gateway keeps, it must be consistent.
    if (p.length === 1) {
      out.push(() => {
        const b = fresh() as any;
        const o = inner(b);
        const good = JSON.stringify(o[p[0]!]);
        const t = text(b).replace(JSON.stringify(p[0]) + ":", `${JSON.stringify(p[0])}:{"dup":[1]},${JSON.stringify(p[0])}:`);
        return withExpect(`${p[0]} duplicated (bad first, ${good.slice(0, 20)} last)`, t);
      });
      out.push(() => {
        const b = fresh() as any;
        const t = text(b).replace(/}(\]?)$/, `,${JSON.stringify(p[0])}:null}$1`);
        return withExpect(`${p[0]} duplicated (null last)`, t);
      });
    }
  });

  // Declared but absent in the baseline: each gets a few values, valid ones (enums, dates) among them.
  for (const [p, ps] of absentFields(doc, schema, inner(base))) {
    for (const [name, frag] of valuesFor(doc, ps, unique, rng, Math.max(1, perField - 2))) {
      out.push(() => {
        const b = fresh();
        setAt(b, at(p), HOLE(0));
        return withExpect(`${p.join(".")} (absent in the baseline) = ${name}`, text(b, [frag]));
      });
    }
  }

  const extra = (k: string, v: string, kind: string) => () => {
    const b = fresh() as any;
    inner(b)[`\u0002${k}`] = HOLE(0);
    return withExpect(kind, text(b, [v]).replace(JSON.stringify(`\u0002${k}`), JSON.stringify(k)));
  };
  out.push(extra("fzUnknownField", '"surplus"', "an unknown extra field"));
  out.push(extra("__proto__", '{"polluted":true}', "a __proto__ key"));
  out.push(extra("constructor", '{"prototype":{"polluted":true}}', "a constructor key"));
  out.push(extra("deep", nested(200), "200 nested objects in an extra field"));

  const whole = (kind: string, t: string) => () => withExpect(kind, t);
  for (const [kind, t] of [["null", "null"], ["a number", "42"], ["a string", '"body"'], ["true", "true"], ["an empty array", "[]"], ["an empty object", "{}"], ["1e309", "1e309"], ["arrays nested 100,000 deep", "[".repeat(100_000) + "]".repeat(100_000)]] as const) out.push(whole(`the body is ${kind}`, t));
  out.push(() => withExpect("the body wrapped in an array", `[${text(fresh())}]`));
  out.push(() => withExpect("the body wrapped in an object", `{"data":${text(fresh())}}`));
  out.push(() => ({ kind: "truncated JSON", text: text(fresh()).slice(0, -3), expect: { status: 400 } }));
  out.push(() => ({ kind: "trailing garbage", text: text(fresh()) + "}}", expect: { status: 400 } }));
  out.push(() => ({ kind: "a JSON comment", text: text(fresh()).replace(/^([[{])/, "$1/*c*/"), expect: { status: 400 } }));
  out.push(() => ({ kind: "a UTF-8 BOM before the JSON", text: new Uint8Array([0xef, 0xbb, 0xbf, ...utf8(text(fresh()))]), expect: "any" }));

  // Invalid UTF-8 inside the first string of the body: the gateway must refuse it, not read U+FFFD.
  const badBytes: [string, number[]][] = [["bytes FF FE", [0xff, 0xfe]], ["an overlong '/' (C0 AF)", [0xc0, 0xaf]], ["a UTF-8-encoded surrogate (ED A0 80)", [0xed, 0xa0, 0x80]], ["a truncated sequence (E2 82)", [0xe2, 0x82]]];
  for (const [name, bytes] of badBytes) {
    out.push(() => {
      const t = text(fresh());
      const q = t.indexOf(':"');
      return { kind: `invalid UTF-8: ${name}`, text: splice(t, q >= 0 ? q + 2 : 1, bytes), expect: { status: 400 } };
    });
  }

  // Media types and encodings.
  const typed = (kind: string, contentType: string | null, expect: Expect, headers?: Record<string, string>) => () => ({ kind, text: text(fresh()), contentType, headers, expect });
  out.push(typed("no Content-Type", null, { status: 415 }));
  out.push(typed("Content-Type text/plain", "text/plain", { status: 415 }));
  out.push(typed("Content-Type form-urlencoded", "application/x-www-form-urlencoded", { status: 415 }));
  out.push(typed("Content-Type multipart", "multipart/form-data; boundary=x", { status: 415 }));
  out.push(typed("Content-Type application/xml", "application/xml", { status: 415 }));
  out.push(typed("JSON with charset latin1", "application/json; charset=iso-8859-1", { status: 415 }));
  out.push(typed("Content-Type with an empty type", ";charset=utf-8", { status: 415 }));
  out.push(typed("Content-Type APPLICATION/JSON (case)", "APPLICATION/JSON", "any"));
  out.push(typed("Content-Encoding gzip (but plain bytes)", "application/json", { status: 415 }, { "content-encoding": "gzip" }));
  out.push(() => ({ kind: "a body over 1 MiB", text: `{"pad":"${"p".repeat(1_100_000)}"}`, expect: { status: 413 } }));
  out.push(() => ({ kind: "an empty body", text: "", expect: "any" }));
  out.push(() => ({ kind: "a whitespace body", text: " \n\t", expect: "any" }));
  return out;
}

/** Percent-encodings a query value and a path parameter both get: non-ASCII, NUL, and escapes that name no UTF-8 text. */
function escapeValues(unique: () => string): [string, string][] {
  return [
    ["unicode", encodeURIComponent(`ü😀${unique()}`)],
    ["%00", "a%00b"],
    ["%ZZ", "%ZZ"],
    ["a lone surrogate %ED%A0%80", "%ED%A0%80"],
    ["an overlong %C0%AF", "%C0%AF"],
  ];
}

/** Query values to try for one parameter; each is [kind, raw (already percent-encoded) values]. */
export function queryValues(unique: () => string): [string, string[]][] {
  return [
    ["empty", [""]],
    ["a word", ["abc"]],
    ["-1", ["-1"]],
    ["0", ["0"]],
    ["1.5", ["1.5"]],
    ["1e309", ["1e309"]],
    ["NaN", ["NaN"]],
    ["2^53+1", ["9007199254740993"]],
    ["8,000 characters", ["q".repeat(8000)]],
    ...escapeValues(unique).map(([kind, v]): [string, string[]] => [kind, [v]]),
    ["an encoded slash and dots", ["..%2F..%2Fx"]],
    ["__proto__", ["__proto__"]],
    ["a JSON object", [encodeURIComponent('{"$eq":"x"}')]],
    ["truncated JSON", [encodeURIComponent('{"model":{"$eq":')]],
    ["JSON with __proto__", [encodeURIComponent('{"__proto__":{"$eq":"x"}}')]],
    ["JSON nested 100 deep", [encodeURIComponent(nested(100))]],
    ["JSON with 1e309", [encodeURIComponent('{"model":{"$gt":1e309}}')]],
    ["true", ["true"]],
    ["repeated", ["a", "b"]],
  ];
}

/** Path-parameter values to try (raw, already percent-encoded); ids of other kinds are added by the test. */
export function pathValues(unique: () => string): [string, string][] {
  return [
    ["3,000 characters", "p".repeat(3000)],
    ["65 characters", "p".repeat(65)],
    ["an encoded slash", "a%2Fb"],
    ["an encoded backslash", "a%5Cb"],
    ["a dot", "."],
    ["encoded dots", "%2E%2E"],
    ...escapeValues(unique),
    ["__proto__", "__proto__"],
    ["constructor", "constructor"],
    ["a space", "a%20b"],
    ["a semicolon parameter", "x;v=1"],
    ["0", "0"],
  ];
}

/**
 * Fields of `body` whose schema is a map (additionalProperties, no declared properties), with a value
 * one of their entries may hold: a key named after an Object.prototype member must be treated there
 * exactly like any other key nobody declared.
 */
export function mapFields(doc: Schema, schema: Schema, body: unknown): [(string | number)[], unknown][] {
  const out: [(string | number)[], unknown][] = [];
  const o = objectSchema(doc, schema, body);
  if (!o || !isObject(body)) return out;
  for (const [k, ps] of Object.entries<Schema>(o.properties)) {
    const d = deref(doc, ps);
    const isMap = !d.properties && (d.additionalProperties === true || isObject(d.additionalProperties)) && [d.type].flat().includes("object");
    const current = body[k];
    if (isMap && isObject(current)) out.push([[k], Object.values(current)[0] ?? "x"]);
  }
  return out;
}
