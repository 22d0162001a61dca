/**
 * The page behind a share link: reads the snapshot as JSON and shows it read-only. The token is
 * in the link's fragment (`/shared/#<token>`), which browsers never send: the page sends it in a
 * header. Older links carry it in the path.
 */
import type { SharedConversation } from "./api";
import { renderMarkdown } from "./markdown";
import { renderParts } from "./parts";

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
    ...shared.messages.map((message, index) => {
      const item = Object.assign(document.createElement("li"), { className: `message ${message.sender}` });
      if (message.images?.length) item.append(sharedImages(token, index, message.images));
      const who = Object.assign(document.createElement("div"), { className: "meta", textContent: message.sender === "user" ? "User" : "Assistant" });
      const content = Object.assign(document.createElement("div"), { className: "content" });
      // Tool calls as cards, their arguments and outputs as text: a tool's output is untrusted.
      if (message.parts) renderParts(content, message.parts);
      else if (message.sender === "ai") renderMarkdown(content, message.content);
      else content.textContent = message.content;
      item.append(content, who);
      return item;
    }),
  );
}

/** A shared message's images: fetched with the link's token (no file id is ever shown), shown from memory. */
function sharedImages(token: string, message: number, images: NonNullable<SharedConversation["messages"][number]["images"]>): HTMLElement {
  const box = Object.assign(document.createElement("div"), { className: "message-files" });
  images.forEach((image, i) => {
    const element = Object.assign(document.createElement("img"), { alt: image.filename, className: "attached-image" });
    void fetch(`/shared/images/${message}/${i}`, { headers: { "X-Share-Token": token } })
      .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(String(response.status)))))
      .then((blob) => (element.src = URL.createObjectURL(blob)))
      .catch(() => element.remove());
    box.append(element);
  });
  return box;
}

void show();
