import type { Branch, BranchMessage } from "./context-window";

// A long conversation's branch is not worth holding in memory: objects share their isolate's 128 MB.
const MAX_CACHED_CHARS = 256 * 1024;

/**
 * The branch through the current leaf as the last turn saw it, plus that turn's reply: the next
 * send's history without a D1 read, so its model call can start while its accept batch commits.
 *
 * D1 stays the source of truth: message edits and deletes are written by the Worker, which then
 * calls `forget` (after its write, so a turn started meanwhile sees at worst what a turn sent a
 * moment before the edit would have seen). A turn that started before a `forget` cannot put its
 * older view back: `remember` takes the epoch the turn saw.
 */
export class BranchCache {
  #entry: { leafId: string; branch: Branch } | null = null;
  #epoch = 0;

  get epoch(): number {
    return this.#epoch;
  }

  forget(): void {
    this.#epoch++;
    this.#entry = null;
  }

  /** The branch a send after `leafId` answers, ending with its own new message; null when not cached. */
  branchAfter(leafId: string, own: BranchMessage): Branch | null {
    const entry = this.#entry;
    if (!entry || entry.leafId !== leafId) return null;
    return { messages: [...entry.branch.messages, own], summary: entry.branch.summary };
  }

  /**
   * Keeps `branch` (what a turn answered) and its reply (null when empty: an empty reply is no
   * history) as the branch through `leafId`, the turn's AI message, if nothing was forgotten since `epoch`.
   */
  remember(epoch: number, leafId: string, branch: Branch, reply: BranchMessage | null): void {
    if (epoch !== this.#epoch) return;
    const messages = reply ? [...branch.messages, reply] : branch.messages;
    const chars = messages.reduce((sum, message) => sum + message.content.length, 0);
    this.#entry = chars <= MAX_CACHED_CHARS ? { leafId, branch: { messages, summary: branch.summary } } : null;
  }
}
