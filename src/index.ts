import { app } from "./http/app";
import type { Env } from "./env";

export { CustomerDO } from "./customer/do";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
