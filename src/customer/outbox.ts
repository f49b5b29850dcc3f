import { classifyResponse, nextAttemptAt } from "../domain/backoff";
import type { ChannelDef, DeliveryAttempt, DeliveryState } from "../domain/notification";
import { webhookHeaders } from "../domain/signing";
import { iso } from "../domain/time";
import type { Sql } from "./sql";

/**
 * The notification outbox. A row is written in the same transaction as the change that caused
 * it (a threshold crossing), so a notification exists if and only if the crossing was committed;
 * delivery happens afterwards from the alarm, at least once, always with the same webhook-id
 * (the notification id) so receivers can drop repeats.
 */

/**
 * How deliveries are timed: the attempt timeout, and a factor on the retry schedule's delays.
 * Production: 15 s and 1 (the spec's schedule, exactly). WEBHOOK_TIMEOUT_MS and WEBHOOK_RETRY_SCALE
 * (src/env.ts) shorten both for end-to-end tests of timeouts and retries.
 */
export interface DeliveryPolicy {
  timeoutMs: number;
  retryScale: number;
}

export const DEFAULT_POLICY: DeliveryPolicy = { timeoutMs: 15_000, retryScale: 1 };

/** A delivery left SENDING this long (the DO was evicted or killed mid-attempt) is due again. */
const staleSendingMs = (policy: DeliveryPolicy) => policy.timeoutMs * 2;
const MAX_PARALLEL = 16;
const KEEP_ATTEMPTS = 20;

export interface Notification {
  id: string;
  ruleId: string;
  type: string;
  createdAt: number;
  payload: unknown;
  channelIds: readonly string[];
}

export interface DeliveryRow extends Record<string, SqlStorageValue> {
  notification_id: string;
  channel_id: string;
  state: DeliveryState;
  reason: string;
  attempts: number;
  next_attempt_at: number | null;
  log: string;
  updated_at: number;
}

/** Inside the caller's transaction. */
export function enqueue(sql: Sql, n: Notification): void {
  sql.exec(
    "INSERT INTO notifications (id, rule_id, type, created_at, payload, version, mirrored_version) VALUES (?, ?, ?, ?, ?, 1, 0)",
    n.id,
    n.ruleId,
    n.type,
    n.createdAt,
    JSON.stringify(n.payload),
  );
  for (const channelId of n.channelIds) {
    sql.exec(
      "INSERT INTO deliveries (notification_id, channel_id, state, reason, attempts, next_attempt_at, log, updated_at) VALUES (?, ?, 'PENDING', 'waiting for the first attempt', 0, ?, '[]', ?)",
      n.id,
      channelId,
      n.createdAt,
      n.createdAt,
    );
  }
}

/** When the next delivery is due (null: nothing pending). */
export function nextDue(sql: Sql, policy: DeliveryPolicy = DEFAULT_POLICY): number | null {
  const row = sql.one<{ at: number | null; stale: number | null }>(
    "SELECT min(CASE WHEN state IN ('PENDING','RESENDING') THEN next_attempt_at END) AS at, min(CASE WHEN state = 'SENDING' THEN updated_at END) AS stale FROM deliveries",
  );
  const candidates = [row?.at ?? null, row?.stale == null ? null : row.stale + staleSendingMs(policy)].filter((x): x is number => x !== null);
  return candidates.length ? Math.min(...candidates) : null;
}

export interface DeliveryReport {
  /** Channels whose receiver answered 410 Gone: to be disabled. */
  gone: string[];
}

/**
 * Sends every due delivery (up to MAX_PARALLEL at once) and records each outcome. Expected
 * failures (timeouts, 5xx, refused connections) are recorded and rescheduled, never thrown.
 */
export async function deliverDue(
  sql: Sql,
  channels: ReadonlyMap<string, ChannelDef>,
  now: number,
  policy: DeliveryPolicy = DEFAULT_POLICY,
  fetcher: typeof fetch = fetch,
): Promise<DeliveryReport> {
  const due = sql.all<DeliveryRow & { payload: string }>(
    `SELECT d.*, n.payload FROM deliveries d JOIN notifications n ON n.id = d.notification_id
     WHERE (d.state IN ('PENDING','RESENDING') AND d.next_attempt_at <= ?) OR (d.state = 'SENDING' AND d.updated_at <= ?)
     ORDER BY d.next_attempt_at LIMIT ?`,
    now,
    now - staleSendingMs(policy),
    MAX_PARALLEL,
  );
  const gone = new Set<string>();
  await Promise.all(
    due.map(async (row) => {
      const channel = channels.get(row.channel_id);
      if (!channel || channel.disabled) {
        settle(sql, row, "FAILED", channel ? "channel is disabled" : "channel was deleted", null, null, now);
        return;
      }
      markSending(sql, row, now);
      const attempt = await send(channel, row.notification_id, row.payload, fetcher, policy.timeoutMs);
      const at = Date.now();
      const outcome = classifyResponse(attempt.status);
      if (outcome === "success") settle(sql, row, "SUCCESS", `receiver answered ${attempt.status}`, null, attempt, at);
      else if (outcome === "disable") {
        gone.add(channel.id);
        settle(sql, row, "FAILED", "receiver answered 410 Gone: channel disabled", null, attempt, at);
      } else if (outcome === "fail") settle(sql, row, "FAILED", `receiver answered ${attempt.status}; not retried`, null, attempt, at);
      else {
        const next = nextAttemptAt(row.attempts + 1, at, attempt.retryAfter, policy.retryScale);
        if (next === null) settle(sql, row, "FAILED", `gave up after ${row.attempts + 1} attempts (${describe(attempt, policy)})`, null, attempt, at);
        else settle(sql, row, "PENDING", `${describe(attempt, policy)}; retrying at ${iso(next)}`, next, attempt, at);
      }
    }),
  );
  return { gone: [...gone] };
}

export interface Attempt {
  status: number | "timeout" | "network";
  retryAfter: string | null;
  body: string;
  durationMs: number;
}

function describe(a: Attempt, policy: DeliveryPolicy): string {
  return a.status === "timeout" ? `timed out after ${policy.timeoutMs / 1000} s` : a.status === "network" ? `connection failed: ${a.body}` : `receiver answered ${a.status}`;
}

/** Of a receiver's reply, what the delivery log keeps (characters). */
const REPLY_KEPT = 1024;
const replyText = new TextDecoder();

/**
 * The start of a reply's body, as text. Only its first 4 KB are read and the rest is cancelled: a
 * receiver may answer gigabytes, which `text()` held whole in the object's memory, or a body that never
 * ends, which held the delivery run until the attempt's timeout.
 */
async function replyHead(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const bytes = new Uint8Array(REPLY_KEPT * 4);
  let size = 0;
  try {
    while (size < bytes.length) {
      const { done, value } = await reader.read();
      if (done) break;
      const part = value.subarray(0, bytes.length - size);
      bytes.set(part, size);
      size += part.byteLength;
    }
  } catch {
    // A body cut off part-way: keep what arrived.
  } finally {
    reader.cancel().catch(() => undefined);
  }
  return replyText.decode(bytes.subarray(0, size)).slice(0, REPLY_KEPT);
}

/** One signed attempt; never throws (a timeout or refused connection is an outcome, not an error). */
export async function send(channel: ChannelDef, msgId: string, body: string, fetcher: typeof fetch, timeoutMs = DEFAULT_POLICY.timeoutMs): Promise<Attempt> {
  const started = Date.now();
  // A timer we clear ourselves (not AbortSignal.timeout): a finished attempt must leave nothing pending
  // that would keep the Durable Object busy.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    // Inside the try: a custom header stored before values were checked (e.g. with a line break)
    // fails this attempt like a refused connection, instead of the whole delivery job.
    const headers = new Headers(channel.customHeaders);
    for (const [k, v] of Object.entries(await webhookHeaders(channel.signingSecret, msgId, Math.floor(started / 1000), body))) headers.set(k, v);
    headers.set("content-type", "application/json");
    headers.set("user-agent", "edgemeter-webhooks/1");
    const res = await fetcher(channel.url, { method: "POST", headers, body, redirect: "manual", signal: abort.signal });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await replyHead(res), durationMs: Date.now() - started };
  } catch (e) {
    return { status: abort.signal.aborted ? "timeout" : "network", retryAfter: null, body: String((e as Error)?.message ?? e).slice(0, 256), durationMs: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

function markSending(sql: Sql, row: DeliveryRow, now: number): void {
  sql.exec("UPDATE deliveries SET state = 'SENDING', updated_at = ? WHERE notification_id = ? AND channel_id = ?", now, row.notification_id, row.channel_id);
}

function settle(sql: Sql, row: DeliveryRow, state: DeliveryState, reason: string, next: number | null, attempt: Attempt | null, now: number): void {
  const log = JSON.parse(row.log) as DeliveryAttempt[];
  if (attempt) {
    log.push({
      state: state === "PENDING" ? "FAILED" : state,
      timestamp: iso(now),
      response: { ...(typeof attempt.status === "number" ? { statusCode: attempt.status } : {}), body: attempt.body, durationMs: attempt.durationMs },
    });
  }
  sql.transaction(() => {
    // A resend requested while this attempt was in flight (resend() set the row to RESENDING) stands:
    // the attempt is logged, and the delivery stays queued for the send the API said it would make.
    const current = attempt ? sql.one<{ state: string }>("SELECT state FROM deliveries WHERE notification_id = ? AND channel_id = ?", row.notification_id, row.channel_id) : undefined;
    if (current && current.state !== "SENDING") {
      sql.exec("UPDATE deliveries SET log = ? WHERE notification_id = ? AND channel_id = ?", JSON.stringify(log.slice(-KEEP_ATTEMPTS)), row.notification_id, row.channel_id);
    } else {
      sql.exec(
        "UPDATE deliveries SET state = ?, reason = ?, attempts = ?, next_attempt_at = ?, log = ?, updated_at = ? WHERE notification_id = ? AND channel_id = ?",
        state,
        reason,
        row.attempts + (attempt ? 1 : 0),
        next,
        JSON.stringify(log.slice(-KEEP_ATTEMPTS)),
        now,
        row.notification_id,
        row.channel_id,
      );
    }
    sql.exec("UPDATE notifications SET version = version + 1 WHERE id = ?", row.notification_id);
  });
}

/** A resend: the same notification (same webhook-id) goes out again to the given channels (all when empty). */
export function resend(sql: Sql, notificationId: string, channelIds: readonly string[], now: number): number {
  const rows = sql.all<{ channel_id: string }>("SELECT channel_id FROM deliveries WHERE notification_id = ?", notificationId);
  let n = 0;
  sql.transaction(() => {
    for (const r of rows) {
      if (channelIds.length && !channelIds.includes(r.channel_id)) continue;
      sql.exec(
        "UPDATE deliveries SET state = 'RESENDING', reason = 'resend requested', attempts = 0, next_attempt_at = ?, updated_at = ? WHERE notification_id = ? AND channel_id = ?",
        now,
        now,
        notificationId,
        r.channel_id,
      );
      n++;
    }
    if (n) sql.exec("UPDATE notifications SET version = version + 1 WHERE id = ?", notificationId);
  });
  return n;
}
