import { createApp } from "./app";

export { ConversationObject } from "./engine/conversation-object";

export default createApp();
