/**
 * Standard Webhooks symmetric signatures (reference/standard-webhooks.md, "Signature scheme"
 * and "Webhook headers"), with Web Crypto only so it runs in workerd and Node alike.
 *
 * - Secret: `whsec_` + base64 of random bytes (spec: 24–64 bytes). OpenMeter's API also accepts
 *   the bare base64 without the prefix (NotificationChannelWebhookCreateRequest.signingSecret,
 *   pattern `^(whsec_)?[a-zA-Z0-9+/=]{32,100}$`); the HMAC key is always the decoded bytes.
 * - Signed content: `${msgId}.${timestamp}.${body}`, HMAC-SHA256, sent as `v1,<base64>`.
 *   Several signatures (secret rotation) are space-separated in one header.
 * - Headers: `webhook-id`, `webhook-timestamp` (unix seconds), `webhook-signature`, plus the
 *   same values under the `svix-` names, which OpenMeter's Svix-based webhooks send and
 *   existing receivers verify.
 */

const PREFIX = "whsec_";
const OPENMETER_SECRET_PATTERN = /^(whsec_)?[a-zA-Z0-9+/=]{32,100}$/;
/** Standard base64, padded or not; `=` only as trailing padding. */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Random bytes in a generated secret: 256 bits, as long as the SHA-256 output (spec: 24–64 bytes). */
const SECRET_BYTES = 32;

function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function base64Body(secret: string): string {
  return secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret;
}

function isDecodableBase64(s: string): boolean {
  if (!BASE64.test(s)) return false;
  const padded = s.endsWith("=");
  // Padded input must be whole quartets; unpadded input may stop after 2 or 3 characters, never 1.
  return padded ? s.length % 4 === 0 : s.length % 4 !== 1;
}

/** A new secret: `whsec_` + base64 of 32 random bytes (44 characters after the prefix). */
export function generateSigningSecret(): string {
  return PREFIX + bytesToBase64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

/**
 * Whether OpenMeter's API would accept `s` as a webhook channel's signingSecret *and* it decodes
 * as base64 (the pattern alone lets through strings no receiver library could use as a key).
 */
export function isValidSigningSecret(s: string): boolean {
  return OPENMETER_SECRET_PATTERN.test(s) && isDecodableBase64(base64Body(s));
}

/** The HMAC key bytes of a secret (the base64-decoded part after `whsec_`). */
export function signingKeyBytes(secret: string): Uint8Array {
  if (!isValidSigningSecret(secret)) throw new TypeError("invalid webhook signing secret");
  const body = base64Body(secret).replace(/=+$/, "");
  const bin = atob(body + "=".repeat((4 - (body.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function assertMessageMeta(msgId: string, timestampSec: number): void {
  // Spec: id and timestamp must not contain "." or the signed content becomes ambiguous.
  if (msgId === "" || /[.\s]/.test(msgId)) throw new TypeError(`invalid webhook message id: ${JSON.stringify(msgId)}`);
  if (!Number.isSafeInteger(timestampSec) || timestampSec < 0) {
    throw new TypeError(`webhook timestamp must be integer unix seconds, got ${timestampSec}`);
  }
}

/** `v1,<base64 HMAC-SHA256 of "msgId.timestamp.body">`, keyed with the decoded secret. */
export async function signWebhook(secret: string, msgId: string, timestampSec: number, body: string): Promise<string> {
  assertMessageMeta(msgId, timestampSec);
  const key = await crypto.subtle.importKey("raw", signingKeyBytes(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${msgId}.${timestampSec}.${body}`));
  return `v1,${bytesToBase64(new Uint8Array(mac))}`;
}

export interface WebhookHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
  "svix-id": string;
  "svix-timestamp": string;
  "svix-signature": string;
}

/**
 * All signature headers for one delivery attempt. Pass several secrets during a rotation: each
 * yields a signature and receivers accept the message if any one verifies. `body` must be the
 * exact bytes sent.
 */
export async function webhookHeaders(
  secrets: string | readonly string[],
  msgId: string,
  timestampSec: number,
  body: string,
): Promise<WebhookHeaders> {
  const list = typeof secrets === "string" ? [secrets] : secrets;
  if (list.length === 0) throw new TypeError("at least one signing secret is required");
  const signature = (await Promise.all(list.map((s) => signWebhook(s, msgId, timestampSec, body)))).join(" ");
  const timestamp = String(timestampSec);
  return {
    "webhook-id": msgId,
    "webhook-timestamp": timestamp,
    "webhook-signature": signature,
    "svix-id": msgId,
    "svix-timestamp": timestamp,
    "svix-signature": signature,
  };
}
