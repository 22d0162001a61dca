import { createApp } from "./app";
import { housekeeping } from "./db/housekeeping";

export { ConversationObject } from "./conversation/conversation-object";
export { UserObject } from "./user/user-object";

const app = createApp();

export default {
  fetch: app.fetch,
  scheduled: async (_controller, env, ctx) => ctx.waitUntil(housekeeping(env)),
} satisfies ExportedHandler<Env>;
