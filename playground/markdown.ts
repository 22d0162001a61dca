/**
 * Replies rendered as Markdown (GitHub's flavour: headings, lists, tables, links, code), safely: a
 * reply is whatever the model wrote, and a shared one whatever anyone made it write. Raw HTML in
 * the Markdown is shown as text, and what marked produces still passes DOMPurify before it
 * reaches the page.
 */
import DOMPurify from "dompurify";
import { Check, Copy, createElement } from "lucide";
import { Marked } from "marked";

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const markdown = new Marked({ gfm: true, async: false, renderer: { html: ({ text }) => escapeHtml(text) } });

// Links open in a new tab and tell the target nothing about this page.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

export const icon = (shape: Parameters<typeof createElement>[0]) => createElement(shape, { width: 16, height: 16, "aria-hidden": "true", class: "icon" });

/** A button over each code block that copies the code. */
function addCopyButtons(root: HTMLElement): void {
  for (const pre of root.querySelectorAll("pre")) {
    const button = Object.assign(document.createElement("button"), { type: "button", className: "copy-code" });
    button.setAttribute("aria-label", "Copy code");
    button.append(icon(Copy));
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(pre.querySelector("code")?.textContent ?? pre.textContent ?? "");
      button.replaceChildren(icon(Check));
      button.setAttribute("aria-label", "Copied");
      setTimeout(() => (button.replaceChildren(icon(Copy)), button.setAttribute("aria-label", "Copy code")), 1_500);
    });
    pre.append(button);
  }
}

/** Shows `text` in `element` as sanitized Markdown. */
export function renderMarkdown(element: HTMLElement, text: string): void {
  const html = markdown.parse(text) as string;
  element.innerHTML = DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"], FORBID_ATTR: ["style"] }).trim();
  element.classList.add("markdown");
  addCopyButtons(element);
}
