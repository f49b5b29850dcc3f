import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { customer, withConfig } from "../customer/client";
import { MAX_HISTORY_WINDOWS, type BalanceHistory, type Span } from "../customer/history";
import { subjectKey } from "../domain/cloudevent";
import { iso } from "../domain/time";
import { requireScope } from "./auth";
import type { AppEnv } from "./context";
import { ms, Period } from "./entitlement-schemas";
import { namespaceConfig, onSubject } from "./entitlements";
import { errorResponses } from "./errors";
import { checkTimeZone, WindowSizeSchema, WindowTimeZoneSchema } from "./schemas";

/** GET …/entitlements/{entitlementId}/history (OpenMeter's WindowedBalanceHistory); computed in customer/history.ts. */

const Balances = z.record(z.string(), z.number()).openapi({ description: "Grant id → balance." });

const WindowedBalanceHistory = z
  .object({
    windowedHistory: z.array(z.object({ period: Period, usage: z.number(), balanceAtStart: z.number() }).openapi("BalanceHistoryWindow")).openapi({
      description: "Usage per window, only windows with usage; each window starts at its start and ends before its end; the first and last are cut to [from, to).",
    }),
    burndownHistory: z
      .array(
        z
          .object({
            period: Period,
            usage: z.number(),
            overage: z.number(),
            balanceAtStart: z.number(),
            grantBalancesAtStart: Balances,
            balanceAtEnd: z.number(),
            grantBalancesAtEnd: Balances,
            grantUsages: z.array(z.object({ grantId: z.string(), usage: z.number() }).openapi("GrantUsageRecord")),
          })
          .openapi("GrantBurnDownHistorySegment"),
      )
      .openapi({ description: "Segments between the instants that change the burn-down: a usage period starting or a reset, a grant becoming active, expiring or voided." }),
  })
  .openapi("WindowedBalanceHistory");

const HistoryQuery = z.object({
  from: z.iso.datetime({ offset: true }).optional().openapi({ description: "Default: the last reset (start of the current usage period). Truncated to the minute; not before measurement began." }),
  to: z.iso.datetime({ offset: true }).optional().openapi({ description: "Default: now. Truncated to the minute; a later time means now." }),
  windowSize: WindowSizeSchema,
  windowTimeZone: WindowTimeZoneSchema,
});

export const entitlementHistory = new OpenAPIHono<AppEnv>();

entitlementHistory.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/history",
    summary: "An entitlement's usage and balance history",
    description:
      "OpenMeter's history of a metered entitlement, across resets and usage periods, computed from the stored minute buckets like a " +
      `value at a past time. At most ${MAX_HISTORY_WINDOWS} windows per request (400 beyond). {entitlementId} also takes the feature key.`,
    tags: ["Entitlements"],
    middleware: [requireScope("read")] as const,
    request: { params: z.object({ subjectIdOrKey: subjectKey, entitlementId: z.string().min(1).max(64) }), query: HistoryQuery },
    responses: { 200: { description: "History", content: { "application/json": { schema: WindowedBalanceHistory } } }, ...errorResponses("validation_failed", "unauthenticated", "forbidden", "not_found") },
  }),
  async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    checkTimeZone(q.windowTimeZone);
    const query = { from: q.from === undefined ? null : ms(q.from), to: q.to === undefined ? null : ms(q.to), windowSize: q.windowSize, timeZone: q.windowTimeZone };
    const config = await namespaceConfig(c);
    const r = await onSubject(c, p.subjectIdOrKey, (id) => withConfig(config, (cfg) => customer(c.env, id).entitlementHistory(id, cfg, p.entitlementId, query)));
    return c.json(render(r.value), 200);
  },
);

const span = (s: Span) => ({ from: iso(s.from), to: iso(s.to) });

function render(h: BalanceHistory): z.infer<typeof WindowedBalanceHistory> {
  return {
    windowedHistory: h.windowedHistory.map((w) => ({ ...w, period: span(w.period) })),
    burndownHistory: h.burndownHistory.map((s) => ({ ...s, period: span(s.period) })),
  };
}
