/** The page behind a share link: reads the snapshot as JSON and shows it read-only. */
import type { SharedConversation } from "./api";
import { renderMarkdown } from "./markdown";

const list = document.getElementById("messages") as HTMLOListElement;
const title = document.getElementById("chat-title")!;

async function show(): Promise<void> {
  const response = await fetch(location.pathname, { headers: { Accept: "application/json" } });
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
