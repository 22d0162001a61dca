/** The Durable Object that owns a conversation's write path, named after the conversation. */
export const conversationObject = (env: Env, conversationId: string) => env.CONVERSATION.get(env.CONVERSATION.idFromName(conversationId));

export type ConversationStub = ReturnType<typeof conversationObject>;
