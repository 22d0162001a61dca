import type { Conversation } from "../db/schema";
import type { Refusal } from "../http/errors";
import type { MessageView } from "./conversation-store";
import type { TurnResult } from "./frames";
import type { IfBusy, TurnAsk } from "./turn-checks";
import type { ToolAnswers } from "../rules/tool-rules";

/* What the Worker and a conversation object say to each other over RPC. */

export interface TurnSubmission {
  userId: string;
  conversationId: string;
  ask: TurnAsk;
  /** A conversation to create when neither the object nor D1 holds one (`mayExist` false: D1 cannot, its id is new). */
  create?: { row: Conversation; mayExist: boolean };
  /** The conversation's id derives from the Idempotency-Key (keyed start_conversation). */
  keyNamesConversation?: boolean;
  /** The client's Idempotency-Key and a hash of what it sent with it. */
  idempotency: { key: string; requestHash: string } | null;
  ifBusy: IfBusy;
  /** The user's generation slot the Worker took for this turn: the object holds it until the turn ends. */
  lease: string;
  /** The tokens the slot reserved against the daily budget, and what the budget left beyond them; null without a token budget. */
  budget: { reserved: number; headroom: number } | null;
  /** What a missing conversation is called in the 404 (a chat, for the AI SDK routes). */
  notFoundAs?: "Conversation" | "Chat";
}

/** Answers to a turn waiting for tool outputs or approvals, with the generation slot the Worker took to go on. */
export interface ToolAnswerSubmission {
  userId: string;
  conversationId: string;
  aiMessageId: string;
  answers: ToolAnswers;
  lease: string;
  idempotency: TurnSubmission["idempotency"];
  /** Drop answers to calls that do not wait (an AI SDK client re-sends every tool part it holds). */
  onlyWaiting?: boolean;
}

export type { TurnResult };

export type Attachment = ReadableStream<Uint8Array> | "finished" | null;

export type SubmitOutcome =
  | Refusal
  | { kind: "stream"; stream: ReadableStream<Uint8Array> }
  /** `bookmark`: the D1 bookmark once D1 has the turn, for the client to read it back with. */
  | { kind: "result"; result: TurnResult; bookmark: string | null };

export interface ConversationOverlay {
  conversation: Conversation;
  /** Messages D1 lacks or holds in an older version, and Generating replies with their text so far. */
  messages: MessageView[];
}

/** A change committed in the object; `bookmark` once D1 has it too. */
export interface Committed<T> {
  value: T;
  bookmark: string | null;
}
