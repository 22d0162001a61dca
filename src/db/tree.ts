import { asc, eq } from "drizzle-orm";
import { notFound } from "../http/errors";
import type { Siblings } from "../http/schemas";
import type { Database } from "./client";
import { ownedConversationQuery } from "./queries";
import { messages } from "./schema";

/** A conversation's messages without their content: enough to walk branches and count siblings. */
export interface TreeNode {
  id: string;
  parentId: string | null;
  order: number;
  isDeleted: boolean;
}

/** Read from the `messages_conversation_tree` index alone, in creation order. */
export const treeQuery = (db: Database, conversationId: string) =>
  db
    .select({ id: messages.id, parentId: messages.parentId, order: messages.order, isDeleted: messages.isDeleted })
    .from(messages)
    .where(eq(messages.conversationId, conversationId))
    .orderBy(asc(messages.order));

/**
 * The message tree of one conversation. `includeDeleted` decides whether soft-deleted messages
 * count: hidden ones are skipped on paths, as siblings and as branch ends.
 */
export class ConversationTree {
  readonly #byId = new Map<string, TreeNode>();
  readonly #children = new Map<string | null, TreeNode[]>();
  readonly #newest = new Map<string, TreeNode>();

  constructor(
    nodes: readonly TreeNode[],
    readonly includeDeleted: boolean,
  ) {
    for (const node of nodes) {
      this.#byId.set(node.id, node);
      if (!this.#visible(node)) continue;
      const siblings = this.#children.get(node.parentId);
      if (siblings) siblings.push(node);
      else this.#children.set(node.parentId, [node]);
    }
    // Children are created after their parent, so walking from the highest order down settles
    // each node's newest descendant before it is handed up to its parent.
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      const newest = this.#newest.get(node.id) ?? node;
      if (!this.#newest.has(node.id)) this.#newest.set(node.id, newest);
      if (node.parentId === null || !this.#visible(newest)) continue;
      const parentBest = this.#newest.get(node.parentId);
      if (!parentBest || parentBest.order < newest.order) this.#newest.set(node.parentId, newest);
    }
  }

  /** Every visible message, in order. */
  all(): TreeNode[] {
    return [...this.#byId.values()].filter((node) => this.#visible(node));
  }

  get(id: string): TreeNode | undefined {
    return this.#byId.get(id);
  }

  /** The visible messages from the root down to `leafId`, in order; empty for null. */
  pathTo(leafId: string | null): TreeNode[] {
    const path: TreeNode[] = [];
    for (let node = leafId === null ? undefined : this.#byId.get(leafId); node; node = node.parentId === null ? undefined : this.#byId.get(node.parentId)) {
      if (this.#visible(node)) path.push(node);
    }
    return path.reverse();
  }

  /** Where `id` sits among the visible messages with its parent, and the branch ends either side of it. */
  siblings(id: string): Siblings {
    const node = this.#byId.get(id)!;
    const all = this.#children.get(node.parentId) ?? [node];
    const at = Math.max(0, all.findIndex((n) => n.id === id));
    const branchEnd = (sibling: TreeNode | undefined) => (sibling ? (this.#newest.get(sibling.id) ?? sibling).id : null);
    return { index: at + 1, count: all.length, previous: branchEnd(all[at - 1]), next: branchEnd(all[at + 1]) };
  }

  #visible(node: TreeNode): boolean {
    return this.includeDeleted || !node.isDeleted;
  }
}

/** One of the user's conversations with its message tree, read in one round trip; another user's is a 404. */
export async function loadOwnedTree(db: Database, userId: string, conversationId: string, includeDeleted: boolean) {
  const [[conversation], nodes] = await db.batch([ownedConversationQuery(db, userId, conversationId), treeQuery(db, conversationId)]);
  if (!conversation) throw notFound("Conversation");
  return { conversation, tree: new ConversationTree(nodes, includeDeleted) };
}
