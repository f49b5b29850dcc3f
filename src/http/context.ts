import type { Env } from "../env";

export type Scope = "ingest" | "read" | "admin";

/** Who is calling: the namespace comes only from here, never from the request. */
export interface Principal {
  namespace: string;
  scopes: readonly Scope[];
  keyId: string;
  /** The ADMIN_API_KEY secret: may manage keys of any namespace. */
  root: boolean;
  /** Set for a consumer portal token (no scopes): it may read this subject's usage, and nothing else. */
  portal?: { subject: string; allowedMeterSlugs: readonly string[] | null };
}

export type AppEnv = { Bindings: Env; Variables: { principal: Principal } };
