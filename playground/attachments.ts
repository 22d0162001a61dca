/**
 * Files for the next message: picked, dropped or pasted, uploaded at once (so a refusal shows
 * before sending), shown as thumbnails or chips until the message goes. Also how a sent message's
 * files are shown.
 */
import { Paperclip, X } from "lucide";
import { json, request, type Message } from "./api";
import { icon } from "./markdown";

type StoredFile = { id: string; filename: string; media_type: string };

const pending: { file: StoredFile; preview: string | null }[] = [];

const strip = document.getElementById("pending-files") as HTMLUListElement;
const error = document.getElementById("attach-error") as HTMLParagraphElement;
const picker = document.getElementById("file-picker") as HTMLInputElement;

function render(): void {
  strip.hidden = pending.length === 0;
  strip.replaceChildren(
    ...pending.map((entry, i) => {
      const item = Object.assign(document.createElement("li"), { className: "pending-file" });
      item.dataset.filename = entry.file.filename;
      if (entry.preview) item.append(Object.assign(document.createElement("img"), { src: entry.preview, alt: entry.file.filename, className: "thumbnail" }));
      else item.append(Object.assign(document.createElement("span"), { className: "file-chip", textContent: entry.file.filename }));
      const remove = Object.assign(document.createElement("button"), { type: "button", className: "link remove-file" });
      remove.setAttribute("aria-label", `Remove ${entry.file.filename}`);
      remove.append(icon(X));
      remove.addEventListener("click", () => {
        if (entry.preview) URL.revokeObjectURL(entry.preview);
        pending.splice(i, 1);
        render();
      });
      item.append(remove);
      return item;
    }),
  );
}

/** Uploads each file; one that is refused (its type, its size, the storage quota) says so plainly. */
export async function attach(files: Iterable<File>): Promise<void> {
  error.hidden = true;
  for (const file of files) {
    try {
      const stored = await json<StoredFile>(`/files/?filename=${encodeURIComponent(file.name)}`, {
        method: "POST",
        body: file,
        headers: { "Content-Type": file.type || "application/octet-stream" },
      });
      pending.push({ file: stored, preview: stored.media_type.startsWith("image/") ? URL.createObjectURL(file) : null });
    } catch (failure) {
      error.textContent = `Could not attach ${file.name}: ${(failure as Error).message}`;
      error.hidden = false;
    }
  }
  render();
}

/** The ids to send with the next message; the strip empties once it is sent. */
export const pendingIds = () => pending.map((entry) => entry.file.id);

export function clearPending(): void {
  for (const entry of pending.splice(0)) if (entry.preview) URL.revokeObjectURL(entry.preview);
  render();
}

/** A sent message's files: images shown (fetched with the caller's token), others as chips. */
export function messageFiles(message: Message): HTMLElement | null {
  if (!message.attachments?.length) return null;
  const list = Object.assign(document.createElement("div"), { className: "message-files" });
  for (const file of message.attachments) {
    if ("deleted" in file) list.append(Object.assign(document.createElement("span"), { className: "file-chip", textContent: `${file.filename} (deleted)` }));
    else if (file.media_type.startsWith("image/")) {
      const image = Object.assign(document.createElement("img"), { alt: file.filename, className: "attached-image" });
      void request(`/files/${file.id}/content`)
        .then((response) => response.blob())
        .then((blob) => (image.src = URL.createObjectURL(blob)))
        .catch(() => image.replaceWith(Object.assign(document.createElement("span"), { className: "file-chip", textContent: `${file.filename} (deleted)` })));
      list.append(image);
    } else list.append(Object.assign(document.createElement("span"), { className: "file-chip", textContent: file.filename }));
  }
  return list;
}

/** The attach button, drag and drop onto `dropTarget`, and pasting into `prompt`. */
export function wireAttachments(button: HTMLButtonElement, dropTarget: HTMLElement, prompt: HTMLTextAreaElement): void {
  button.replaceChildren(icon(Paperclip));
  button.addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    void attach([...(picker.files ?? [])]).then(() => (picker.value = ""));
  });
  dropTarget.addEventListener("dragover", (event) => event.preventDefault());
  dropTarget.addEventListener("drop", (event) => {
    event.preventDefault();
    void attach([...(event.dataTransfer?.files ?? [])]);
  });
  prompt.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length) {
      event.preventDefault();
      void attach(files);
    }
  });
}
