/**
 * The page behind a share link: reads the snapshot as JSON and shows it read-only. The token is
 * in the link's fragment (`/shared/#<token>`), which browsers never send: the page sends it in a
 * header. Older links carry it in the path.
 */
import type { SharedConversation } from "./api";
import { renderMarkdown } from "./markdown";

const list = document.getElementById("messages") as HTMLOListElement;
const title = document.getElementById("chat-title")!;

async function show(): Promise<void> {
  const token = location.hash.slice(1) || location.pathname.split("/")[2] || "";
  const response = await fetch("/shared/", { headers: { Accept: "application/json", "X-Share-Token": token } });
  if (!response.ok) {
    title.textContent = "This link does not work any more.";
    return;
  }
  const shared = (await response.json()) as SharedConversation;
  title.textContent = shared.title ?? "Shared conversation";
  document.title = `${title.textContent} · genai-edge`;
  list.replaceChildren(
    ...shared.messages.map((message) => {
      const item = Object.assign(document.createElement("li"), { className: `message ${message.sender}` });
      const who = Object.assign(document.createElement("div"), { className: "meta", textContent: message.sender === "user" ? "User" : "Assistant" });
      const content = Object.assign(document.createElement("div"), { className: "content" });
      if (message.sender === "ai") renderMarkdown(content, message.content);
      else content.textContent = message.content;
      item.append(content, who);
      return item;
    }),
  );
}

void show();
