/** The notification definitions a customer Durable Object needs (they travel in the namespace config). */

export interface ChannelDef {
  id: string;
  name: string;
  url: string;
  customHeaders: Record<string, string>;
  signingSecret: string;
  disabled: boolean;
}

export interface ThresholdDef {
  type: "usage_value" | "usage_percentage" | "balance_value" | "NUMBER" | "PERCENT";
  value: number;
}

export interface RuleDef {
  id: string;
  name: string;
  type: "entitlements.balance.threshold" | "entitlements.reset";
  disabled: boolean;
  channels: string[];
  /** Feature ids and keys the rule is limited to; empty = every feature. */
  features: string[];
  thresholds: ThresholdDef[];
}

export type DeliveryState = "PENDING" | "SENDING" | "SUCCESS" | "FAILED" | "RESENDING";

export interface DeliveryAttempt {
  state: DeliveryState;
  timestamp: string;
  response: { statusCode?: number; body?: string; durationMs: number };
}

/** Headers a tenant may not override: they carry the signature and the framing. */
const RESERVED = /^(content-type|content-length|host|user-agent|webhook-.*|svix-.*|transfer-encoding|connection)$/i;

export function allowedCustomHeader(name: string): boolean {
  return /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/.test(name) && !RESERVED.test(name);
}

/**
 * A header value a webhook can carry: printable ASCII, spaces and tabs (RFC 9110 field-value without
 * obs-text). A line break or NUL would make fetch refuse every delivery on the channel, or, sent
 * raw, split one header into two.
 */
export function allowedCustomHeaderValue(value: string): boolean {
  return /^[\t\x20-\x7e]*$/.test(value);
}

export function ruleAppliesTo(rule: RuleDef, featureId: string, featureKey: string): boolean {
  return !rule.disabled && (rule.features.length === 0 || rule.features.includes(featureId) || rule.features.includes(featureKey));
}
