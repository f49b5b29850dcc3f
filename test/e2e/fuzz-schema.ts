// The gateway's own OpenAPI document as the fuzzer reads it (fuzz.e2e.test.ts): its operations, and a
// small JSON Schema checker of the keywords it uses. Pure, like fuzz-gen.ts.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Schema = { [k: string]: any };

export interface Param { name: string; in: "path" | "query"; required: boolean; schema: Schema }
export interface Operation { method: string; path: string; key: string; params: Param[]; body?: { schema: Schema; types: string[]; required: boolean }; responses: Record<string, Schema | undefined> }

export function operations(doc: Schema): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries<Schema>(doc.paths)) {
    for (const [m, op] of Object.entries<Schema>(item)) {
      if (!["get", "post", "put", "delete", "patch"].includes(m)) continue;
      const method = m.toUpperCase();
      const params = (op.parameters ?? []).filter((p: Param) => p.in === "path" || p.in === "query");
      const content = op.requestBody?.content as Record<string, { schema: Schema }> | undefined;
      const body = content ? { schema: Object.values(content)[0]!.schema, types: Object.keys(content), required: Boolean(op.requestBody.required) } : undefined;
      // The documented JSON schema of each answer, by status.
      const responses = Object.fromEntries(Object.entries<Schema>(op.responses ?? {}).map(([status, r]) => [status, r.content?.["application/json"]?.schema]));
      out.push({ method, path, key: `${method} ${path}`, params, body, responses });
    }
  }
  return out;
}

export function deref(doc: Schema, s: Schema | undefined): Schema {
  let seen = 0;
  while (s && typeof s.$ref === "string" && seen++ < 32) s = s.$ref.slice(2).split("/").reduce((o: any, k: string) => o?.[k], doc);
  return s ?? {};
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Does `v` satisfy `s`? Only the keywords the document uses. Formats are not checked: a value this calls
 * valid may still be refused by the gateway (that is only reported); a value it calls invalid must be.
 */
export function valid(doc: Schema, schema: Schema | undefined, v: unknown): boolean {
  const s = deref(doc, schema);
  if (s.allOf && !s.allOf.every((x: Schema) => valid(doc, x, v))) return false;
  if (s.anyOf && !s.anyOf.some((x: Schema) => valid(doc, x, v))) return false;
  if (s.oneOf && s.oneOf.filter((x: Schema) => valid(doc, x, v)).length !== 1) return false;
  // An enum the document describes as case-insensitive ("in any case") is compared so.
  const fold = (x: unknown) => (typeof x === "string" && /in any case/i.test(s.description ?? "") ? x.toLowerCase() : x);
  if (s.enum && !s.enum.some((e: unknown) => fold(e) === fold(v))) return false;
  if ("const" in s && s.const !== v) return false;
  if (s.type !== undefined) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
    const ok = types.some((t) =>
      t === "null" ? v === null
      : t === "integer" ? Number.isInteger(v)
      : t === "number" ? typeof v === "number" && Number.isFinite(v)
      : t === "string" ? typeof v === "string"
      : t === "boolean" ? typeof v === "boolean"
      : t === "array" ? Array.isArray(v)
      : t === "object" ? isObject(v)
      : true,
    );
    if (!ok) return false;
  }
  if (typeof v === "string") {
    const len = [...v].length;
    if (s.minLength !== undefined && len < s.minLength) return false;
    if (s.maxLength !== undefined && len > s.maxLength) return false;
    if (s.pattern !== undefined && !patternOf(s.pattern)?.test(v)) return patternOf(s.pattern) === null;
  }
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) return false;
    if (s.maximum !== undefined && v > s.maximum) return false;
    if (typeof s.exclusiveMinimum === "number" && !(v > s.exclusiveMinimum)) return false;
    if (typeof s.exclusiveMaximum === "number" && !(v < s.exclusiveMaximum)) return false;
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) return false;
    if (s.maxItems !== undefined && v.length > s.maxItems) return false;
    if (s.items && !v.every((x) => valid(doc, s.items, x))) return false;
  }
  if (isObject(v)) {
    for (const r of s.required ?? []) if (!Object.hasOwn(v, r)) return false;
    for (const [k, x] of Object.entries(v)) {
      if (s.properties && Object.hasOwn(s.properties, k)) {
        if (!valid(doc, s.properties[k], x)) return false;
      } else if (s.additionalProperties === false) return false;
      else if (isObject(s.additionalProperties) && !valid(doc, s.additionalProperties, x)) return false;
    }
  }
  return true;
}

const patterns = new Map<string, RegExp | null>();
/** A pattern that does not compile as a JS regex counts as "no constraint" (and is reported by the test). */
export function patternOf(p: string): RegExp | null {
  if (!patterns.has(p)) {
    let re: RegExp | null = null;
    try {
      re = new RegExp(p, "u");
    } catch {
      try {
        re = new RegExp(p);
      } catch {}
    }
    patterns.set(p, re);
  }
  return patterns.get(p)!;
}

/**
 * Is a query value (already decoded; several when repeated) valid for a parameter's schema? Query
 * strings are text, so integers and numbers are read the way zod's coerce reads them (Number(v)).
 */
export function validQuery(doc: Schema, schema: Schema, values: string[]): boolean {
  const s = deref(doc, schema);
  const arrayish = (x: Schema) => {
    const d = deref(doc, x);
    return d.type === "array" || (Array.isArray(d.type) && d.type.includes("array"));
  };
  if (s.anyOf) return s.anyOf.some((x: Schema) => validQuery(doc, x, values));
  if (arrayish(s)) return valid(doc, { ...s, type: "array" }, values) || values.every((v) => validQuery(doc, s.items ?? {}, [v]));
  if (values.length !== 1) return false;
  const v = values[0]!;
  const types: string[] = Array.isArray(s.type) ? s.type : [s.type ?? "string"];
  if (types.includes("integer") || types.includes("number")) {
    const n = Number(v);
    return valid(doc, { ...s, type: types.filter((t) => t !== "string") }, n);
  }
  return valid(doc, s, v);
}

/** The object schema `value` is checked against: through $ref, allOf, and the oneOf/anyOf branch it satisfies. */
export function objectSchema(doc: Schema, schema: Schema | undefined, value: unknown): Schema | null {
  const s = deref(doc, schema);
  for (const k of ["oneOf", "anyOf"] as const) {
    if (s[k]) {
      const branch = s[k].find((b: Schema) => valid(doc, b, value)) ?? s[k][0];
      return objectSchema(doc, branch, value);
    }
  }
  if (s.allOf) return objectSchema(doc, s.allOf.find((x: Schema) => deref(doc, x).properties) ?? s.allOf[0], value);
  return s.properties ? s : null;
}

/** Where `v` first fails `schema` (a dotted path), for a readable failure; "" when it is the value itself. */
export function firstInvalid(doc: Schema, schema: Schema | undefined, v: unknown, path = ""): string {
  const s = deref(doc, schema);
  if (Array.isArray(v) && s.items) {
    const i = v.findIndex((x) => !valid(doc, s.items, x));
    if (i >= 0) return firstInvalid(doc, s.items, v[i], `${path}[${i}]`);
  }
  if (isObject(v)) {
    const o = objectSchema(doc, s, v);
    for (const r of o?.required ?? []) if (!Object.hasOwn(v, r)) return `${path}.${r} (missing)`;
    for (const [k, x] of Object.entries(v)) {
      const ps = o?.properties?.[k] ?? (isObject(o?.additionalProperties) ? o!.additionalProperties : undefined);
      if (o && !o.properties?.[k] && o.additionalProperties === false) return `${path}.${k} (not documented)`;
      if (ps && !valid(doc, ps, x)) return firstInvalid(doc, ps, x, `${path}.${k}`);
    }
  }
  return `${path || "."} = ${JSON.stringify(v)?.slice(0, 80)}`;
}
