// Types for ./harness.mjs (kept in plain JS so bench/ scripts can import it with bare Node).

export type Runtime = "dev" | "serve";

export interface GatewayOptions {
  /**
   * "dev" (default): `npm start` (scripts/start.mjs → wrangler dev). "serve": `npm run serve`
   * (scripts/serve.mjs → the production bundle on workerd). Both read the same state dir layout.
   */
  runtime?: Runtime;
  /** Port on 127.0.0.1; default: a free one. */
  port?: number;
  /** D1 + Durable Object state; default: a new temp dir, removed by cleanup(). */
  stateDir?: string;
  /**
   * Extra environment for scripts/start.mjs or scripts/serve.mjs. Names declared under [vars] in wrangler.toml
   * (e.g. CONFIG_CACHE_SECONDS, ALLOW_INSECURE_WEBHOOKS) reach the Worker as variables.
   * ALLOW_INSECURE_WEBHOOKS defaults to "true" here.
   */
  env?: Record<string, string | undefined>;
  /** Default: a random em_admin_… key, passed as $ADMIN_API_KEY (never written to .dev.vars). */
  adminKey?: string;
  /** How long to wait for the ready line (wrangler's "Ready on" / serve's "listening on") and then GET /healthz → 200. Default 60 000 ms. */
  timeoutMs?: number;
  /** Stream the gateway's output to stderr. Default: $EDGEMETER_E2E_LOG is set. */
  log?: boolean;
}

export interface Gateway {
  readonly runtime: Runtime;
  /** e.g. http://127.0.0.1:41234 */
  readonly baseUrl: string;
  readonly port: number;
  readonly adminKey: string;
  readonly stateDir: string;
  /** Process id of start.mjs / serve.mjs, which is also the process group id. */
  readonly pid: number;
  /** SIGTERM to the process group, SIGKILL after 5 s; resolves when every process is gone. */
  stop(): Promise<void>;
  /** SIGKILL to the process group at once (crash test); resolves when every process is gone. */
  kill9(): Promise<void>;
  /** A new gateway on the same port, state dir, key and env (call after stop() or kill9()). */
  start(): Promise<Gateway>;
  /** stop(), then start(). */
  restart(): Promise<Gateway>;
  /** stop(), and remove the state dir if the harness created it. */
  cleanup(): Promise<void>;
  /** The last lines the gateway printed. */
  output(): string;
  /** fetch relative to baseUrl, with `Authorization: Bearer <adminKey>` unless init sets one. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

export function startGateway(options?: GatewayOptions): Promise<Gateway>;

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number>;
