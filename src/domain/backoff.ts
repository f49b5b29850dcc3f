/**
 * Webhook delivery retry schedule and response classification, after the Standard Webhooks
 * spec ("Deliverability and reliability" and "Delivery success and failure").
 *
 * Schedule: the example table of the spec — attempt 1 immediately, then 5 s, 5 min, 30 min, 2 h,
 * 5 h, 10 h, 14 h, 20 h and 24 h after the previous attempt: 10 attempts over ~75.5 h, then the
 * delivery is FAILED. Delays are counted from the end of the previous attempt. The spec suggests
 * jitter; this module stays deterministic (the caller may add a little).
 *
 * Retry-After (spec: "should be taken into consideration when scheduling the next attempt"): when
 * a response carries it (delta-seconds or an HTTP-date) and it asks for a *later* time than the
 * schedule, it wins, capped at 24 h after the attempt so a receiver cannot park a delivery forever.
 * It never grants extra attempts.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** Delay before attempt n+1, indexed by n = attempts already made (index 0: the first attempt). */
export const RETRY_DELAYS_MS: readonly number[] = [
  0,
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  14 * HOUR,
  20 * HOUR,
  24 * HOUR,
];

export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length;

/** Longest wait a Retry-After header can impose. */
export const MAX_RETRY_AFTER_MS = 24 * HOUR;

/**
 * Parses a Retry-After value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date. Returns the
 * absolute time (epoch ms) it asks for, relative to `nowMs`, or null if absent or malformed.
 */
export function parseRetryAfter(header: string | null | undefined, nowMs: number): number | null {
  if (header == null) return null;
  const value = header.trim();
  if (value === "") return null;
  if (/^\d+$/.test(value)) return nowMs + Number(value) * SECOND;
  // HTTP-date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); Date.parse also reads the obsolete forms.
  if (!/[a-z]/i.test(value)) return null; // bare numbers like "-5" or "1.5" are not dates
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

/**
 * When to make the next attempt, or null to give up (the delivery is FAILED).
 *
 * @param attemptsMade attempts already made (0 for a delivery never tried: due at once).
 * @param lastAttemptAt epoch ms of the last attempt (or, with 0 attempts, of enqueueing).
 * @param retryAfterHeader the Retry-After header of the last response, if any.
 * @param scale multiplies the schedule's delays (not Retry-After): 1 in production (WEBHOOK_RETRY_SCALE,
 *   src/env.ts); less in end-to-end tests that cannot wait 5 minutes for a third attempt.
 */
export function nextAttemptAt(attemptsMade: number, lastAttemptAt: number, retryAfterHeader?: string | null, scale = 1): number | null {
  if (!Number.isInteger(attemptsMade) || attemptsMade < 0) {
    throw new RangeError(`attemptsMade must be a non-negative integer, got ${attemptsMade}`);
  }
  if (!Number.isFinite(lastAttemptAt)) throw new RangeError(`lastAttemptAt must be finite, got ${lastAttemptAt}`);
  if (attemptsMade >= MAX_ATTEMPTS) return null;
  const scheduled = lastAttemptAt + Math.round((RETRY_DELAYS_MS[attemptsMade] as number) * scale);
  if (attemptsMade === 0) return scheduled;
  const asked = parseRetryAfter(retryAfterHeader, lastAttemptAt);
  if (asked === null || asked <= scheduled) return scheduled;
  return Math.min(asked, lastAttemptAt + MAX_RETRY_AFTER_MS);
}

export type DeliveryOutcome = "success" | "retry" | "disable" | "fail";

/**
 * What a delivery attempt's result means:
 * - success: 2xx.
 * - retry: 408, 429, 5xx, a timeout or a network error (transient; 429/502/504 ask for throttling,
 *   which the schedule's growing delays provide).
 * - disable: 410 Gone ("the server is no longer interested": disable the endpoint).
 * - fail: any other status, including 3xx (redirects are not followed: the spec counts them as
 *   failures, and the URL should be fixed instead). Final, no retry.
 */
export function classifyResponse(status: number | "timeout" | "network"): DeliveryOutcome {
  if (status === "timeout" || status === "network") return "retry";
  if (status >= 200 && status <= 299) return "success";
  if (status === 410) return "disable";
  if (status === 408 || status === 429 || (status >= 500 && status <= 599)) return "retry";
  return "fail";
}
