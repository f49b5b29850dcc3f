import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { database } from "../db/client";
import { insertKey, listKeys, revokeKey, type ApiKeyRow } from "../db/keys";
import { base64url, sha256Hex, ulid } from "../domain/ids";
import { forgetKey, requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ApiError, errorResponses } from "./errors";

const Namespace = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "lowercase letters, digits, `_` and `-`, at most 63 characters");
const Scope = z.enum(["ingest", "read", "admin"]);

const KeyCreate = z
  .object({
    name: z.string().min(1).max(256),
    namespace: Namespace.optional().openapi({ description: "Defaults to the caller's namespace. Only the ADMIN_API_KEY may name another one." }),
    scopes: z.array(Scope).min(1).max(3),
  })
  .strict()
  .openapi("ApiKeyCreate");

const ApiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    namespace: z.string(),
    scopes: z.array(Scope),
    prefix: z.string().openapi({ description: "The first characters of the key, to recognise it." }),
    createdAt: z.string(),
  })
  .openapi("ApiKey");

const toApi = (r: ApiKeyRow) => ({
  id: r.id,
  name: r.name,
  namespace: r.namespace,
  scopes: r.scopes as z.infer<typeof Scope>[],
  prefix: r.prefix,
  createdAt: new Date(r.createdAt).toISOString(),
});

export const keys = new OpenAPIHono<AppEnv>();

keys.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/keys",
    summary: "Create an API key (shown once)",
    tags: ["Keys"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: { "application/json": { schema: KeyCreate } } } },
    responses: {
      201: { description: "Created; `key` is the secret and is never shown again.", content: { "application/json": { schema: ApiKey.extend({ key: z.string() }) } } },
      ...errorResponses("validation_failed", "unauthenticated", "forbidden"),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const p = c.get("principal");
    const namespace = body.namespace ?? p.namespace;
    if (namespace !== p.namespace && !p.root) throw new ApiError("forbidden", "only the ADMIN_API_KEY may create keys for another namespace");
    const secret = `em_${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
    const row: ApiKeyRow = {
      id: ulid(),
      namespace,
      name: body.name,
      scopes: [...new Set(body.scopes)],
      keyHash: await sha256Hex(secret),
      prefix: secret.slice(0, 7),
      createdAt: Date.now(),
      revokedAt: null,
    };
    await insertKey(database(c.env.DB), row);
    return c.json({ ...toApi(row), key: secret }, 201);
  },
);

keys.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/keys",
    summary: "List the namespace's API keys (never their secrets)",
    tags: ["Keys"],
    middleware: [requireScope("admin")] as const,
    request: { query: z.object({ namespace: Namespace.optional().openapi({ description: "Only for the ADMIN_API_KEY: list another namespace's keys." }) }) },
    responses: { 200: { description: "Keys", content: { "application/json": { schema: z.array(ApiKey) } } }, ...errorResponses("unauthenticated", "forbidden") },
  }),
  async (c) => {
    const p = c.get("principal");
    const namespace = c.req.valid("query").namespace ?? p.namespace;
    if (namespace !== p.namespace && !p.root) throw new ApiError("forbidden", "only the ADMIN_API_KEY may list keys of another namespace");
    return c.json((await listKeys(database(c.env.DB), namespace)).map(toApi), 200);
  },
);

keys.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/keys/{id}",
    summary: "Revoke an API key (the ADMIN_API_KEY may revoke keys of any namespace)",
    tags: ["Keys"],
    middleware: [requireScope("admin")] as const,
    request: { params: z.object({ id: z.string().min(1).max(64) }) },
    responses: { 204: { description: "Revoked" }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const p = c.get("principal");
    if (!(await revokeKey(database(c.env.DB), p.root ? null : p.namespace, id, Date.now()))) {
      throw new ApiError("not_found", `no API key ${id}`);
    }
    forgetKey(id);
    return c.body(null, 204);
  },
);
