import { describe, expect, it } from "vitest";
import { compileJsonPath, MAX_JSONPATH_LENGTH, type JsonPath } from "../../src/domain/jsonpath";

function compile(path: string): JsonPath {
  const r = compileJsonPath(path);
  if (!r.ok) throw new Error(`expected ${path} to compile, got: ${r.reason}`);
  return r.path;
}

function reason(path: string): string {
  const r = compileJsonPath(path);
  if (r.ok) throw new Error(`expected ${path} to be rejected`);
  return r.reason;
}

describe("compileJsonPath: accepted paths", () => {
  const event = {
    tokens: 42,
    usage: { input_tokens: 7, output_tokens: 0 },
    "model name": "gpt-x",
    items: [{ n: 3 }, { n: 4 }],
    "x-request-id": "r1",
    a_b1: true,
    "a.b": "dotted key",
    a: { b: "nested" },
    "it's": "single",
    'say "hi"': "double",
    été: "summer",
    "0": "zero key",
    nothing: null,
    matrix: [[1, 2], [3, 4]],
  };

  it.each([
    ["$.tokens", 42],
    ["$.usage.input_tokens", 7],
    ["$.usage.output_tokens", 0],
    ["$['model name']", "gpt-x"],
    ['$["model name"]', "gpt-x"],
    ["$.items[0].n", 3],
    ["$.items[1]['n']", 4],
    ["$.matrix[1][0]", 3],
    ["$.x-request-id", "r1"],
    ["$.a_b1", true],
    ["$['a.b']", "dotted key"],
    ["$.a.b", "nested"],
    ["$['it\\'s']", "single"],
    ['$["say \\"hi\\""]', "double"],
    ["$['\\u00e9t\\u00e9']", "summer"],
    ["$.été", "summer"],
    ["$.0", "zero key"],
    ["$.nothing", null],
  ])("%s resolves to %j", (path, expected) => {
    expect(compile(path).get(event)).toEqual(expected);
  });

  it("$ is the data itself", () => {
    expect(compile("$").get(5)).toBe(5);
    expect(compile("$").get(event)).toBe(event);
  });

  it("indexes a root array", () => {
    expect(compile("$[1]").get(["a", "b"])).toBe("b");
  });

  it("decodes every escape, including surrogate pairs", () => {
    const key = "\\'\"/\b\f\n\r\t\u{1F600}";
    const path = compile("$['\\\\\\'\\\"\\/\\b\\f\\n\\r\\t\\ud83d\\ude00']");
    expect(path.get({ [key]: 1 })).toBe(1);
  });

  it("keeps the source and returns the cached result for the same string", () => {
    const a = compileJsonPath("$.usage.input_tokens");
    expect(a.ok && a.path.source).toBe("$.usage.input_tokens");
    expect(compileJsonPath("$.usage.input_tokens")).toBe(a);
  });

  it("still compiles correctly after the cache has been cycled", () => {
    for (let i = 0; i < 2000; i++) compile(`$.k${i}`);
    expect(compile("$.k3").get({ k3: "three" })).toBe("three");
    expect(compile("$.k1999").get({ k1999: "last" })).toBe("last");
  });

  it(`accepts exactly ${MAX_JSONPATH_LENGTH} characters`, () => {
    const path = `$.${"a".repeat(MAX_JSONPATH_LENGTH - 2)}`;
    expect(path.length).toBe(256);
    expect(compile(path).get({ ["a".repeat(254)]: 9 })).toBe(9);
  });
});

describe("compileJsonPath: resolution that does not match", () => {
  it.each([
    ["$.missing", { a: 1 }],
    ["$.a.b", { a: null }],
    ["$.a.b", { a: 5 }],
    ["$.a.length", { a: "abc" }],
    ["$.a.b", { a: "abc" }],
    ["$.items[2]", { items: [1, 2] }],
    ["$.items[0]", { items: { "0": "object, not array" } }],
    ["$.items.length", { items: [1, 2, 3] }],
    ["$.items.0", { items: [1] }],
    ["$.a", null],
    ["$.a", undefined],
    ["$[0]", "string root"],
    ["$[0]", { 0: "x" }],
  ])("%s on %j is undefined", (path, data) => {
    expect(compile(path).get(data)).toBeUndefined();
  });

});

describe("compileJsonPath: own properties only", () => {
  it.each(["$.__proto__", "$.constructor", "$.toString", "$.hasOwnProperty", "$['__proto__']", "$.valueOf"])(
    "%s on a plain object is undefined",
    (path) => {
      expect(compile(path).get({ a: 1 })).toBeUndefined();
    },
  );

  it("does not reach Object.prototype through nested members", () => {
    expect(compile("$.__proto__.constructor").get({})).toBeUndefined();
    expect(compile("$.constructor.prototype").get({})).toBeUndefined();
    expect(compile("$.a.constructor").get({ a: {} })).toBeUndefined();
    expect(compile("$.items.constructor").get({ items: [] })).toBeUndefined();
  });

  it("reads an own __proto__ key, as JSON.parse creates it", () => {
    const data = JSON.parse('{"__proto__": {"polluted": 5}, "constructor": "own"}') as unknown;
    expect(compile("$.__proto__.polluted").get(data)).toBe(5);
    expect(compile("$.constructor").get(data)).toBe("own");
  });

  it("does not read an array hole through the array's prototype chain", () => {
    // Not global pollution (that would break the test runner itself): an array whose own
    // prototype supplies index 1.
    const proto = Object.assign(Object.create(Array.prototype) as object, { 1: "inherited" });
    // eslint-disable-next-line no-sparse-arrays
    const holey = Object.setPrototypeOf([1, , 3], proto) as unknown[];
    expect(Array.isArray(holey) && holey[1]).toBe("inherited");
    expect(compile("$.items[1]").get({ items: holey })).toBeUndefined();
    expect(compile("$.items[2]").get({ items: holey })).toBe(3);
  });

  it("ignores inherited properties but reads null-prototype objects", () => {
    const inherited = Object.create({ secret: 1 }) as object;
    expect(compile("$.secret").get(inherited)).toBeUndefined();
    const bare = Object.assign(Object.create(null) as object, { n: 2 });
    expect(compile("$.n").get(bare)).toBe(2);
  });
});

describe("compileJsonPath: rejections", () => {
  it.each([
    ["", 'JSONPath is empty; it must start with "$"'],
    ["tokens", 'JSONPath must start with "$", found "t" at position 0'],
    [".tokens", 'JSONPath must start with "$", found "." at position 0'],
    ["$.*", 'wildcard "*" at position 2 is not supported'],
    ["$[*]", 'wildcard "*" at position 2 is not supported'],
    ["$*", 'wildcard "*" at position 1 is not supported'],
    ["$.items[*].n", 'wildcard "*" at position 8 is not supported'],
    ["$..a", 'recursive descent ".." at position 1 is not supported'],
    ["$.a..b", 'recursive descent ".." at position 3 is not supported'],
    ["$[?(@.a)]", 'filter expression "?" at position 2 is not supported'],
    ["$.items[?@.n>1]", 'filter expression "?" at position 8 is not supported'],
    ["$[1:2]", 'array slice ":" at position 3 is not supported'],
    ["$[:2]", 'array slice ":" at position 2 is not supported'],
    ["$[-1]", "negative array index at position 2 is not supported"],
    ["$.items[-10]", "negative array index at position 8 is not supported"],
    ["$[-]", 'unexpected "-" at position 2 inside brackets'],
    ["$[", "unterminated bracket starting at position 1"],
    ["$[0", "unterminated bracket starting at position 1"],
    ["$.a['b'", "unterminated bracket starting at position 3"],
    ["$['a", "unterminated bracket starting at position 1: missing closing '"],
    ['$["a', 'unterminated bracket starting at position 1: missing closing "'],
    ["$['a\\", "unterminated bracket starting at position 1: path ends inside an escape"],
    ["$.", 'empty member name after "." at position 1: found end of path at position 2'],
    ["$.a.", 'empty member name after "." at position 3: found end of path at position 4'],
    ["$.[0]", 'empty member name after "." at position 1: found "[" at position 2'],
    ["$['']", "empty member name in brackets at position 1"],
    ['$.a[""]', "empty member name in brackets at position 3"],
    ["$[]", "empty brackets at position 1"],
    ["$[0,1]", 'union "," at position 3 is not supported'],
    ["$['a','b']", 'union "," at position 5 is not supported'],
    ["$[01]", 'array index "01" at position 2 has a leading zero'],
    ["$[99999999999999999999]", 'array index "99999999999999999999" at position 2 is too large'],
    ["$['a'x]", 'expected "]" at position 5, found "x"'],
    ["$[0x]", 'expected "]" at position 3, found "x"'],
    ["$[a]", 'unexpected "a" at position 2 inside brackets: expected a quoted name or an index'],
    ["$a", 'unexpected "a" at position 1: expected "." or "["'],
    ["$.a b", 'unexpected " " at position 3: expected "." or "["'],
    ["$.length()", 'unexpected "(" at position 8: expected "." or "["'],
    ["$['\\x']", 'invalid escape "\\x" at position 3'],
    ["$['\\u12']", "invalid unicode escape at position 3"],
  ])("%j: %s", (path, expected) => {
    expect(reason(path)).toBe(expected);
  });

  it(`rejects paths longer than ${MAX_JSONPATH_LENGTH} characters`, () => {
    const path = `$.${"a".repeat(255)}`;
    expect(reason(path)).toBe("JSONPath is 257 characters long; the limit is 256");
  });
});
