/**
 * The JSONPath subset OpenMeter meters use for `valueProperty` and `groupBy`.
 *
 * Supported (RFC 9535 syntax, singular queries only, so a path names at most one value):
 *   $                 the event's `data` itself
 *   .name             member shorthand; name chars are ASCII letters, digits, `_`, `-`, and any
 *                     non-ASCII character (RFC 9535 allows U+0080 and up; `-` is an extension
 *                     because keys like `x-request-id` are common). Anything else needs brackets.
 *   ['name'] ["name"] quoted member; escapes \\ \' \" \/ \b \f \n \r \t \uXXXX
 *   [N]               array index, N a non-negative integer without leading zeros
 *
 * Everything that can select several values (wildcards, `..`, filters, slices, unions) is
 * rejected at compile time, so a meter definition fails when it is saved rather than
 * silently metering nothing later. Positions in reasons are 0-based character offsets.
 *
 * Resolution follows own properties only: event data is attacker-controlled JSON, and
 * `$.constructor` must not reach Object.prototype. Members select from objects only and indexes
 * from arrays only (as RFC 9535 says), so `$.items.length` is undefined rather than a count.
 */

export type JsonPath = { readonly source: string; get(data: unknown): unknown };

export type CompileJsonPathResult = { ok: true; path: JsonPath } | { ok: false; reason: string };

export const MAX_JSONPATH_LENGTH = 256;

/** A member name (string) or an array index (number). */
type Segment = string | number;

type ParseResult = { ok: true; segments: Segment[] } | { ok: false; reason: string };

// Meter definitions are few but compiled on every config load; the bound keeps a stream of
// distinct invalid paths (from a misbehaving client) from growing the isolate's memory.
const CACHE_LIMIT = 512;
const cache = new Map<string, CompileJsonPathResult>();

export function compileJsonPath(path: string): CompileJsonPathResult {
  const hit = cache.get(path);
  if (hit !== undefined) return hit;
  const result = compileUncached(path);
  if (cache.size >= CACHE_LIMIT) {
    // Map iterates in insertion order: drop the oldest entry.
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(path, result);
  return result;
}

function compileUncached(path: string): CompileJsonPathResult {
  if (typeof path !== "string") return fail("JSONPath must be a string");
  const parsed = parse(path);
  if (!parsed.ok) return parsed;
  const segments = parsed.segments;
  const get =
    segments.length === 0
      ? (data: unknown): unknown => data
      : (data: unknown): unknown => resolve(data, segments);
  return Object.freeze({ ok: true as const, path: Object.freeze({ source: path, get }) });
}

function resolve(data: unknown, segments: readonly Segment[]): unknown {
  let cur: unknown = data;
  for (let k = 0; k < segments.length; k++) {
    const seg = segments[k]!;
    if (typeof seg === "number") {
      if (!Array.isArray(cur) || seg >= cur.length || !Object.hasOwn(cur, seg)) return undefined;
      cur = cur[seg];
    } else {
      if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return undefined;
      if (!Object.hasOwn(cur, seg)) return undefined;
      cur = (cur as Record<string, unknown>)[seg];
    }
  }
  return cur;
}

function fail(reason: string): { ok: false; reason: string } {
  return Object.freeze({ ok: false as const, reason });
}

function show(ch: string | undefined): string {
  return ch === undefined ? "end of path" : JSON.stringify(ch);
}

function isNameChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x5f || // _
    c === 0x2d || // -
    c >= 0x80
  );
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= "0" && ch <= "9";
}

function parse(path: string): ParseResult {
  const n = path.length;
  if (n === 0) return fail('JSONPath is empty; it must start with "$"');
  if (n > MAX_JSONPATH_LENGTH) {
    return fail(`JSONPath is ${n} characters long; the limit is ${MAX_JSONPATH_LENGTH}`);
  }
  if (path[0] !== "$") return fail(`JSONPath must start with "$", found ${show(path[0])} at position 0`);

  const segments: Segment[] = [];
  let i = 1;
  while (i < n) {
    const ch = path[i];
    if (ch === ".") {
      const next = path[i + 1];
      if (next === ".") return fail(`recursive descent ".." at position ${i} is not supported`);
      if (next === "*") return fail(`wildcard "*" at position ${i + 1} is not supported`);
      let j = i + 1;
      while (j < n && isNameChar(path.charCodeAt(j))) j++;
      if (j === i + 1) {
        return fail(`empty member name after "." at position ${i}: found ${show(next)} at position ${i + 1}`);
      }
      segments.push(path.slice(i + 1, j));
      i = j;
    } else if (ch === "[") {
      const r = parseBracket(path, i);
      if (!r.ok) return r;
      segments.push(r.segment);
      i = r.end;
    } else if (ch === "*") {
      return fail(`wildcard "*" at position ${i} is not supported`);
    } else {
      return fail(`unexpected ${show(ch)} at position ${i}: expected "." or "["`);
    }
  }
  return { ok: true, segments };
}

type BracketResult = { ok: true; segment: Segment; end: number } | { ok: false; reason: string };

/** Parses the bracket opening at `open`; `end` is the index just past its "]". */
function parseBracket(path: string, open: number): BracketResult {
  const unterminated = fail(`unterminated bracket starting at position ${open}`);
  const p = open + 1;
  const ch = path[p];
  if (ch === undefined) return unterminated;
  if (ch === "'" || ch === '"') return parseQuoted(path, open, ch);
  if (ch === "*") return fail(`wildcard "*" at position ${p} is not supported`);
  if (ch === "?") return fail(`filter expression "?" at position ${p} is not supported`);
  if (ch === ":") return fail(`array slice ":" at position ${p} is not supported`);
  if (ch === "]") return fail(`empty brackets at position ${open}`);
  if (ch === "-") {
    return isDigit(path[p + 1])
      ? fail(`negative array index at position ${p} is not supported`)
      : fail(`unexpected "-" at position ${p} inside brackets`);
  }
  if (!isDigit(ch)) {
    return fail(`unexpected ${show(ch)} at position ${p} inside brackets: expected a quoted name or an index`);
  }
  let j = p;
  while (isDigit(path[j])) j++;
  const digits = path.slice(p, j);
  const after = path[j];
  if (after === ":") return fail(`array slice ":" at position ${j} is not supported`);
  if (after === ",") return fail(`union "," at position ${j} is not supported`);
  if (after === undefined) return unterminated;
  if (after !== "]") return fail(`expected "]" at position ${j}, found ${show(after)}`);
  if (digits.length > 1 && digits[0] === "0") {
    return fail(`array index "${digits}" at position ${p} has a leading zero`);
  }
  const index = Number(digits);
  if (!Number.isSafeInteger(index)) return fail(`array index "${digits}" at position ${p} is too large`);
  return { ok: true, segment: index, end: j + 1 };
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\", "'": "'", '"': '"', "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t",
};

function parseQuoted(path: string, open: number, quote: string): BracketResult {
  let name = "";
  let j = open + 2;
  for (;;) {
    const ch = path[j];
    if (ch === undefined) return fail(`unterminated bracket starting at position ${open}: missing closing ${quote}`);
    if (ch === quote) break;
    if (ch !== "\\") {
      name += ch;
      j++;
      continue;
    }
    const esc = path[j + 1];
    if (esc === "u") {
      const hex = path.slice(j + 2, j + 6);
      if (!/^[0-9A-Fa-f]{4}$/.test(hex)) return fail(`invalid unicode escape at position ${j}`);
      name += String.fromCharCode(parseInt(hex, 16));
      j += 6;
      continue;
    }
    const decoded = esc === undefined ? undefined : SIMPLE_ESCAPES[esc];
    if (decoded === undefined) {
      return esc === undefined
        ? fail(`unterminated bracket starting at position ${open}: path ends inside an escape`)
        : fail(`invalid escape "\\${esc}" at position ${j}`);
    }
    name += decoded;
    j += 2;
  }
  const close = path[j + 1];
  if (close === undefined) return fail(`unterminated bracket starting at position ${open}`);
  if (close === ",") return fail(`union "," at position ${j + 1} is not supported`);
  if (close !== "]") return fail(`expected "]" at position ${j + 1}, found ${show(close)}`);
  if (name.length === 0) return fail(`empty member name in brackets at position ${open}`);
  return { ok: true, segment: name, end: j + 2 };
}
