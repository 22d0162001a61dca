import { createApp } from "./app";

export { ConversationObject } from "./engine/conversation-object";
export { UserObject } from "./user-object";

export default createApp();
