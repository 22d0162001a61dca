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
  try {
    const { content, promptTokens, completionTokens, totalTokens } = await completeChat(config, entry, request.prompt, request.maxTokens, AbortSignal.timeout(config.model.timeoutMs));
    const spentCostUsd = costUsd(entry.price, promptTokens, completionTokens ?? 0) ?? 0;
    if (!content.trim()) {
      // Useless, but billed all the same.
      ledger.charge(newId(), userId, totalTokens, spentCostUsd);
      throw new Error("the model returned an empty summary");
    }
    const summary = {
      id: newId(),
      conversationId,
      throughMessageId: request.through.id,
      throughOrder: request.through.order,
      content,
      tokens: completionTokens ?? estimateTokens(content),
      createdAt: nowIso(),
    };
    store.saveSummary({ ...summary, spentTokens: totalTokens, spentCostUsd });
    ledger.charge(summary.id, userId, totalTokens, spentCostUsd);
    log.info("summary stored", { conversation_id: conversationId, through_order: request.through.order });
  } catch (error) {
    log.warn("summarizing failed", { conversation_id: conversationId, error: String(error) });
  }
}
