import { createApp } from "./app";
import { housekeeping } from "./housekeeping";

export { ConversationObject } from "./engine/conversation-object";
export { UserObject } from "./user-object";

const app = createApp();

export default {
  fetch: app.fetch,
  scheduled: async (_controller, env, ctx) => ctx.waitUntil(housekeeping(env)),
} satisfies ExportedHandler<Env>;
