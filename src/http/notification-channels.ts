import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { database } from "../db/client";
import { forgetNamespaceConfig } from "../db/config";
import { findChannel, listChannelsQuery, rulesUsingChannel, saveChannel, toChannelDef, type ChannelRow } from "../db/notifications";
import { ulid } from "../domain/ids";
import { allowedCustomHeader, allowedCustomHeaderValue } from "../domain/notification";
import { generateSigningSecret, isValidSigningSecret } from "../domain/signing";
import { iso } from "../domain/time";
import { checkWebhookUrl } from "../domain/webhook-url";
import { settings } from "../env";
import { requireScope } from "./auth";
import type { AppEnv, Principal } from "./context";
import { refuseConfigGrowth } from "./config-budget";
import { ApiError, errorResponses } from "./errors";
import { PageQuery, page, paginated, sortQuery, sortRows } from "./pagination";
import { metadataField } from "./schemas";

const MAX_CUSTOM_HEADERS = 32;

const ChannelCreate = z
  .object({
    type: z.literal("WEBHOOK"),
    name: z.string().min(1).max(256),
    url: z.string().min(1).max(2048),
    // Bounded: every delivery sends them all, and receivers (and fetch) cap total header size.
    customHeaders: z
      .record(z.string(), z.string().max(1024))
      .refine((h) => Object.keys(h).length <= MAX_CUSTOM_HEADERS, `at most ${MAX_CUSTOM_HEADERS} custom headers`)
      .optional(),
    signingSecret: z.string().optional(),
    disabled: z.boolean().optional(),
    metadata: z.record(z.string(), z.string()).nullable().optional(),
  })
  .openapi("NotificationChannelWebhookCreateRequest");

export const ChannelSchema = z
  .object({
    id: z.string(),
    type: z.literal("WEBHOOK"),
    name: z.string(),
    url: z.string(),
    customHeaders: z.record(z.string(), z.string()),
    signingSecret: z.string().optional().openapi({ description: "Shown to admin keys only: with it, anyone could forge this channel's webhooks." }),
    disabled: z.boolean(),
    metadata: z.record(z.string(), z.string()).nullable().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
    deletedAt: z.string().optional(),
  })
  .openapi("NotificationChannelWebhook");

export const toChannelApi = (r: ChannelRow) => ({
  id: r.id,
  type: "WEBHOOK" as const,
  name: r.name,
  url: r.url,
  customHeaders: r.customHeaders,
  signingSecret: r.signingSecret,
  disabled: r.disabled,
  ...metadataField(r.metadata),
  createdAt: iso(r.createdAt),
  updatedAt: iso(r.updatedAt),
  ...(r.deletedAt !== null ? { deletedAt: iso(r.deletedAt) } : {}),
});

/**
 * What a key without the admin scope sees of a channel: no signing secret, and custom header names
 * without their values (they often carry the receiver's credentials). A read key (e.g. a dashboard's)
 * could otherwise forge webhooks to the customer's receiver.
 */
function forScopes(p: Principal, ch: ReturnType<typeof toChannelApi>) {
  if (p.scopes.includes("admin")) return ch;
  const { signingSecret: _secret, ...rest } = ch;
  return { ...rest, customHeaders: Object.fromEntries(Object.keys(ch.customHeaders).map((k) => [k, "<redacted>"])) };
}

/** URL policy, header names and secret format: checked before anything is stored. */
function validated(body: z.infer<typeof ChannelCreate>, allowInsecure: boolean) {
  const errors: { field: string; message: string }[] = [];
  const url = checkWebhookUrl(body.url, allowInsecure);
  if (!url.ok) errors.push({ field: "url", message: url.reason });
  for (const [name, value] of Object.entries(body.customHeaders ?? {})) {
    if (!allowedCustomHeader(name)) errors.push({ field: `customHeaders.${name}`, message: "not a valid header name, or one edgemeter sets itself" });
    else if (!allowedCustomHeaderValue(value)) errors.push({ field: `customHeaders.${name}`, message: "the value must be printable ASCII, spaces and tabs (no line breaks or control characters)" });
  }
  if (body.signingSecret !== undefined && !isValidSigningSecret(body.signingSecret)) {
    errors.push({ field: "signingSecret", message: "must match ^(whsec_)?[a-zA-Z0-9+/=]{32,100}$ and be base64" });
  }
  if (errors.length) throw new ApiError("validation_failed", errors.map((e) => `${e.field}: ${e.message}`).join("; "), { errors });
  return { url: url.ok ? url.url : body.url, signingSecret: body.signingSecret ?? generateSigningSecret() };
}

/** What a create or a replace sets; a replace without a secret keeps the current one. */
function fromBody(body: z.infer<typeof ChannelCreate>, currentSecret: string | undefined, env: AppEnv["Bindings"], now: number) {
  const v = validated({ ...body, signingSecret: body.signingSecret ?? currentSecret }, settings(env).ALLOW_INSECURE_WEBHOOKS);
  return {
    name: body.name,
    url: v.url,
    customHeaders: body.customHeaders ?? {},
    signingSecret: v.signingSecret,
    disabled: body.disabled ?? false,
    metadata: body.metadata ?? null,
    updatedAt: now,
  };
}

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const Id = z.object({ channelId: z.string().min(1).max(64) });

export const channels = new OpenAPIHono<AppEnv>();

channels.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/notification/channels",
    summary: "List notification channels",
    tags: ["Notifications"],
    middleware: [requireScope("read")] as const,
    request: {
      query: PageQuery.extend({
        includeDisabled: z.enum(["true", "false"]).optional(),
        includeDeleted: z.enum(["true", "false"]).optional().openapi({ description: "Deleted channels too, with their deletedAt." }),
        ...sortQuery(["id", "type", "createdAt", "updatedAt"], "id (the default), type, createdAt or updatedAt; ties by id."),
      }),
    },
    responses: { 200: { description: "Channels", content: json(paginated(ChannelSchema, "NotificationChannelPaginatedResponse")) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden") },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const all = await listChannelsQuery(database(c.env.DB), c.get("principal").namespace, q.includeDeleted === "true");
    const by = q.orderBy ?? "id";
    const rows = sortRows(
      all.filter((r) => q.includeDisabled === "true" || !r.disabled),
      (r) => (by === "type" ? "WEBHOOK" : by === "createdAt" ? r.createdAt : by === "updatedAt" ? r.updatedAt : r.id),
      q.order ?? "ASC",
    );
    return c.json(page(rows.map((r) => forScopes(c.get("principal"), toChannelApi(r))), q), 200);
  },
);

channels.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/notification/channels",
    summary: "Create a webhook channel (a signing secret is generated when absent)",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: { body: { required: true, content: json(ChannelCreate) } },
    responses: { 201: { description: "Created", content: json(ChannelSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "conflict") },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const now = Date.now();
    const row: ChannelRow = { id: ulid(now), namespace: c.get("principal").namespace, createdAt: now, deletedAt: null, ...fromBody(body, undefined, c.env, now) };
    await refuseConfigGrowth(database(c.env.DB), row.namespace, "channels", toChannelDef(row));
    await saveChannel(database(c.env.DB), row);
    forgetNamespaceConfig(row.namespace);
    return c.json(toChannelApi(row), 201);
  },
);

async function mustFind(env: AppEnv["Bindings"], namespace: string, id: string, includeDeleted = false): Promise<ChannelRow> {
  const row = await findChannel(database(env.DB), namespace, id, includeDeleted);
  if (!row) throw new ApiError("not_found", `no notification channel ${id}`);
  return row;
}

channels.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/notification/channels/{channelId}",
    summary: "Get a notification channel",
    tags: ["Notifications"],
    middleware: [requireScope("read")] as const,
    request: { params: Id },
    responses: { 200: { description: "Channel", content: json(ChannelSchema) }, ...errorResponses("unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => c.json(forScopes(c.get("principal"), toChannelApi(await mustFind(c.env, c.get("principal").namespace, c.req.valid("param").channelId, true))), 200),
);

channels.openapi(
  createRoute({
    method: "put",
    path: "/api/v1/notification/channels/{channelId}",
    summary: "Replace a notification channel",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: { params: Id, body: { required: true, content: json(ChannelCreate) } },
    responses: { 200: { description: "Updated", content: json(ChannelSchema) }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const current = await mustFind(c.env, namespace, c.req.valid("param").channelId);
    const body = c.req.valid("json");
    const row: ChannelRow = { ...current, ...fromBody(body, current.signingSecret, c.env, Date.now()) };
    await refuseConfigGrowth(database(c.env.DB), namespace, "channels", toChannelDef(row));
    await saveChannel(database(c.env.DB), row);
    forgetNamespaceConfig(namespace);
    return c.json(toChannelApi(row), 200);
  },
);

channels.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/notification/channels/{channelId}",
    summary: "Delete a notification channel (not while a rule uses it)",
    tags: ["Notifications"],
    middleware: [requireScope("admin")] as const,
    request: { params: Id },
    responses: { 204: { description: "Deleted" }, ...errorResponses("unauthenticated", "forbidden", "not_found", "conflict") },
  }),
  async (c) => {
    const namespace = c.get("principal").namespace;
    const db = database(c.env.DB);
    const current = await mustFind(c.env, namespace, c.req.valid("param").channelId);
    const users = await rulesUsingChannel(db, namespace, current.id);
    if (users.length) throw new ApiError("conflict", `channel is used by rule(s) ${users.join(", ")}; remove it from them first`);
    const now = Date.now();
    await saveChannel(db, { ...current, deletedAt: now, updatedAt: now });
    forgetNamespaceConfig(namespace);
    return c.body(null, 204);
  },
);
