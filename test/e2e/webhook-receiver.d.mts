// Types for ./webhook-receiver.mjs.

export interface Delivery {
  /** The path name after /hooks/ (one per channel in tests). */
  name: string;
  /** Arrival (epoch ms, sub-millisecond), when the headers came in. */
  at: number;
  /** webhook-id: the notification id, the same on every attempt. */
  id: string;
  timestamp: string;
  /** The signature verified (standardwebhooks' Webhook.verify, which also checks the timestamp). */
  valid: boolean;
  payload: any;
  body: string;
  /** How many earlier requests this receiver got for the same name and webhook-id. */
  attempt: number;
  /** What the receiver answered (or was about to, for a held request). */
  status: number;
}

export interface Answer {
  status?: number;
  /** Hold the answer this long (a slow receiver). */
  delayMs?: number;
  headers?: Record<string, string>;
}

export interface Receiver {
  readonly port: number;
  /** whsec_… secret every channel of this receiver is created with. */
  readonly secret: string;
  readonly deliveries: Delivery[];
  url(name: string): string;
  /** How to answer requests for `name` (default: 204 at once). */
  behave(name: string, fn: (req: { id: string; attempt: number; payload: any }) => Answer | undefined): void;
  of(name: string): Delivery[];
  /** The first delivery (past or future) matching `pred`, or null after timeoutMs (default 30 s). */
  waitFor(pred: (d: Delivery) => boolean, timeoutMs?: number): Promise<Delivery | null>;
  close(): Promise<void>;
}

export function startReceiver(options?: { port?: number; secret?: string }): Promise<Receiver>;
