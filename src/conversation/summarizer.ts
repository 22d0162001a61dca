import { getConfig } from "../http/config";
import { newId, nowIso } from "../lib/ids";
import { log } from "../lib/log";
import { type BranchMessage, type BranchSummary, estimateTokens } from "./context-window";
import type { ConversationStore } from "./conversation-store";
import { costUsd } from "../model/cost";
import { completeChat } from "../model/model";
import { summaryRequest } from "./summary-request";
import type { UserLedger } from "./user-ledger";

/**
 * Folds messages that fell out of the window into the branch's rolling summary, in the
 * background: the next turn never waits for it (until it lands, turns use the previous summary),
 * and a failure only means the next turn tries again. What writing it cost is charged to the owner.
 */
export async function summarize(env: Env, store: ConversationStore, ledger: UserLedger, previous: BranchSummary | null, dropped: BranchMessage[], model: string): Promise<void> {
  const config = getConfig(env);
  const entry = config.modelEntry(model);
  const request = summaryRequest(previous, dropped, config.modelBudget(model));
  if (!request) return;
  const { id: conversationId, userId } = store.conversation()!;
  const id = newId();
  const mostPrompt = request.prompt.reduce((sum, message) => sum + estimateTokens(message.content), 0);
  ledger.holdCharge(id, userId, mostPrompt + request.maxTokens, costUsd(entry.price, mostPrompt, request.maxTokens) ?? 0);
  let spent = { tokens: 0, costUsd: 0 };
  try {
    const { content, promptTokens, completionTokens, totalTokens } = await completeChat(config, entry, request.prompt, request.maxTokens, AbortSignal.timeout(config.model.timeoutMs));
    const spentCostUsd = costUsd(entry.price, promptTokens, completionTokens ?? 0) ?? 0;
    // Useless if empty, but billed all the same.
    spent = { tokens: totalTokens, costUsd: spentCostUsd };
    if (!content.trim()) throw new Error("the model returned an empty summary");
    const summary = {
      id,
      conversationId,
      throughMessageId: request.through.id,
      throughOrder: request.through.order,
      content,
      tokens: completionTokens ?? estimateTokens(content),
      createdAt: nowIso(),
    };
    store.commit(() => {
      store.saveSummary({ ...summary, spentTokens: totalTokens, spentCostUsd });
      ledger.settle(id, totalTokens, spentCostUsd);
    });
    log.info("summary stored", { conversation_id: conversationId, through_order: request.through.order });
  } catch (error) {
    log.warn("summarizing failed", { conversation_id: conversationId, error: String(error) });
    ledger.settle(id, spent.tokens, spent.costUsd);
  }
}
