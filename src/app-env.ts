import type { RequestIdVariables } from "hono/request-id";

export interface AppEnv {
  Bindings: Env;
  Variables: RequestIdVariables & {
    /** Set by `requireAuth` on authenticated routes. */
    userId: string;
    /** The refresh-token family (session) the access token belongs to. */
    tokenFamily: string;
  };
}
