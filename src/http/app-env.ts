import type { RequestIdVariables } from "hono/request-id";
import type { Connection } from "../db/client";

export interface AppEnv {
  Bindings: Env;
  Variables: RequestIdVariables & {
    /** Set by `requireAuth` on authenticated routes. */
    userId: string;
    /** The refresh-token family (session) the access token belongs to. */
    tokenFamily: string;
    /** The request's session on the caller's shard, opened by its first query (`userDb`). */
    shard?: Connection;
    /** The newest D1 bookmark the response is to carry (`noteBookmark`). */
    bookmark?: string;
    /** The turn rate limit was charged before the body was read (`chargeTurnFirst`). */
    turnRateCharged?: true;
  };
}
