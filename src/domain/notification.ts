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

export function ruleAppliesTo(rule: RuleDef, featureId: string, featureKey: string): boolean {
  return !rule.disabled && (rule.features.length === 0 || rule.features.includes(featureId) || rule.features.includes(featureKey));
}
