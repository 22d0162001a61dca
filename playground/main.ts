import {
  type AiResponse,
  allPages,
  ApiError,
  type Conversation,
  json,
  loadTokens,
  logIn,
  type Message,
  type Models,
  PAGE_SIZE,
  type Page,
  rememberBookmark,
  request,
  saveTokens,
  signUp,
} from "./api";
import { ThumbsDown, ThumbsUp } from "lucide";
import { clearPending, messageFiles, pendingIds, wireAttachments } from "./attachments";
import { icon, renderMarkdown } from "./markdown";
import { applyFrame, BROWSER_TOOLS, type Part, renderParts, runBrowserTool, type ToolCallPart } from "./parts";
import { type Frame, readFrames } from "./sse";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  auth: $("auth"),
  authForm: $<HTMLFormElement>("auth-form"),
  authEmail: $<HTMLInputElement>("auth-email"),
  authPassword: $<HTMLInputElement>("auth-password"),
  authName: $<HTMLInputElement>("auth-name"),
  authError: $("auth-error"),
  signup: $<HTMLButtonElement>("signup"),
  app: $("app"),
  newChat: $<HTMLButtonElement>("new-chat"),
  search: $<HTMLInputElement>("search"),
  list: $<HTMLUListElement>("conversation-list"),
  prev: $<HTMLButtonElement>("prev-page"),
  next: $<HTMLButtonElement>("next-page"),
  pageLabel: $("page-label"),
  userEmail: $("user-email"),
  logout: $<HTMLButtonElement>("logout"),
  title: $("chat-title"),
  fork: $<HTMLButtonElement>("fork"),
  share: $<HTMLButtonElement>("share"),
  exportButton: $<HTMLButtonElement>("export"),
  conversationMenu: $("conversation-menu"),
  shareUrl: $<HTMLInputElement>("share-url"),
  messageSearchForm: $<HTMLFormElement>("message-search-form"),
  messageSearch: $<HTMLInputElement>("message-search"),
  searchResults: $<HTMLUListElement>("search-results"),
  model: $<HTMLSelectElement>("model"),
  messages: $<HTMLOListElement>("messages"),
  composer: $<HTMLFormElement>("composer"),
  prompt: $<HTMLTextAreaElement>("prompt"),
  send: $<HTMLButtonElement>("send"),
  stop: $<HTMLButtonElement>("stop"),
};

const state = {
  page: 1,
  search: "",
  conversation: null as Conversation | null,
  streaming: false,
};

/** The reply being streamed, kept across a page reload so it can be resumed with Last-Event-ID. */
interface InFlight {
  conversationId: string;
  aiMessageId: string;
  /** The reply's parts so far: text, reasoning, tool calls. */
  parts: Part[];
  lastEventId: string;
}
const IN_FLIGHT_KEY = "genai-edge.in-flight";
const loadInFlight = (): InFlight | null => JSON.parse(sessionStorage.getItem(IN_FLIGHT_KEY) ?? "null");
const saveInFlight = (inFlight: InFlight | null) =>
  inFlight ? sessionStorage.setItem(IN_FLIGHT_KEY, JSON.stringify(inFlight)) : sessionStorage.removeItem(IN_FLIGHT_KEY);

// ---------------------------------------------------------------- rendering

function messageElement(message: Message): HTMLLIElement {
  const item = document.createElement("li");
  item.className = `message ${message.sender}`;
  item.dataset.id = message.id;
  item.dataset.sender = message.sender;
  if (message.parts) item.dataset.parts = JSON.stringify(message.parts);
  const content = document.createElement("div");
  content.className = "content";
  const meta = document.createElement("div");
  meta.className = "meta";
  const files = messageFiles(message);
  item.append(...(files ? [files] : []), content, meta);
  showContent(item, message.parts ?? message.content);
  renderMeta(item, message);
  return item;
}

/**
 * A reply as Markdown, with its reasoning and tool calls when it has them (a call waiting for
 * approval gets Approve and Deny); a user's own message exactly as typed.
 */
function showContent(item: HTMLLIElement, shown: string | readonly Part[]): void {
  const content = item.querySelector<HTMLDivElement>(".content")!;
  if (item.dataset.sender !== "ai") content.textContent = String(shown);
  else if (typeof shown === "string") renderMarkdown(content, shown);
  else renderParts(content, shown, { approve: (call) => void answerCalls(item, { approvals: [{ tool_call_id: call.id, approved: true }] }), deny: (call) => void answerCalls(item, { approvals: [{ tool_call_id: call.id, approved: false, reason: "Denied in the playground." }] }) });
}

/**
 * A reply that waits for this browser: its calls of the playground's own tools run here and their
 * outputs go back; calls waiting for an approval wait for a click on their card.
 */
async function answerWaitingCalls(item: HTMLLIElement, parts: readonly Part[]): Promise<void> {
  const waiting = parts.filter((part): part is ToolCallPart => part.type === "tool_call" && part.status === "awaiting_output");
  if (!waiting.length) return;
  const outputs = waiting.map((call) => {
    const output = runBrowserTool(call);
    return output === null ? { tool_call_id: call.id, error: `This browser has no tool named ${call.name}.` } : { tool_call_id: call.id, output };
  });
  await answerCalls(item, { outputs });
}

/** Sends answers for a waiting reply; once none waits, the reply goes on and streams here. */
async function answerCalls(item: HTMLLIElement, answers: object): Promise<void> {
  const conversation = state.conversation;
  if (!conversation || state.streaming) return;
  const response = await request(`/messages/${item.dataset.id}/tool_outputs/`, { method: "POST", json: answers, headers: { Accept: "text/event-stream", "Idempotency-Key": crypto.randomUUID() } });
  // Calls still waiting: the stored reply as JSON, nothing streams.
  if (response.headers.get("Content-Type")?.startsWith("application/json")) {
    const waiting = (await response.json()) as { ai_message: Message };
    showContent(item, waiting.ai_message.parts ?? []);
    return;
  }
  const parts = [...(JSON.parse(item.dataset.parts ?? "[]") as Part[])];
  await followTurn(response, { conversationId: conversation.id, aiMessageId: item.dataset.id!, parts, lastEventId: "" });
}

function renderMeta(item: HTMLLIElement, message: Message): void {
  const meta = item.querySelector<HTMLDivElement>(".meta")!;
  meta.replaceChildren();
  const who = document.createElement("span");
  who.textContent = message.sender === "user" ? "You" : "Assistant";
  meta.append(who);
  if (message.is_edited) meta.append(Object.assign(document.createElement("span"), { textContent: "edited", className: "edited" }));
  if (message.siblings && message.siblings.count > 1) meta.append(siblingSwitcher(message.siblings));
  if (message.sender === "ai") {
    meta.append(...feedbackButtons(item, message));
    const regenerate = Object.assign(document.createElement("button"), { type: "button", textContent: "Regenerate", className: "link" });
    regenerate.setAttribute("aria-label", "Regenerate reply");
    regenerate.addEventListener("click", () => {
      if (!state.streaming) void runBranchTurn(item, `/messages/${message.id}/regenerate/`, { tools: BROWSER_TOOLS });
    });
    meta.append(regenerate);
  }
  if (message.sender === "user") {
    const edit = Object.assign(document.createElement("button"), { type: "button", textContent: "Edit", className: "link" });
    edit.setAttribute("aria-label", "Edit message");
    edit.addEventListener("click", () => startEditing(item, message));
    const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete", className: "link" });
    remove.setAttribute("aria-label", "Delete message");
    remove.addEventListener("click", () => deleteMessage(item, message));
    meta.append(edit, remove);
  }
}

/** Thumbs up / down on a reply (SVG icons: no emoji font needed); pressing the chosen one again clears it. */
function feedbackButtons(item: HTMLLIElement, message: Message): HTMLButtonElement[] {
  return (["up", "down"] as const).map((rating) => {
    const pressed = message.feedback?.rating === rating;
    const button = Object.assign(document.createElement("button"), { type: "button", className: "link thumb" });
    button.append(icon(rating === "up" ? ThumbsUp : ThumbsDown));
    button.setAttribute("aria-label", rating === "up" ? "Good reply" : "Bad reply");
    button.setAttribute("aria-pressed", String(pressed));
    button.addEventListener("click", async () => {
      const rated = await json<Message>(`/messages/${message.id}/feedback/`, { method: "PUT", json: { rating: pressed ? null : rating } });
      Object.assign(message, rated);
      renderMeta(item, message);
    });
    return button;
  });
}

/** ‹ index / count ›: each arrow shows the neighbouring alternative's branch. */
function siblingSwitcher(siblings: NonNullable<Message["siblings"]>): HTMLSpanElement {
  const nav = Object.assign(document.createElement("span"), { className: "siblings" });
  const arrow = (label: string, text: string, leaf: string | null) => {
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: text, className: "link", disabled: leaf === null });
    button.setAttribute("aria-label", label);
    button.addEventListener("click", () => leaf && !state.streaming && void switchBranch(leaf));
    return button;
  };
  nav.append(
    arrow("Previous version", "‹", siblings.previous),
    Object.assign(document.createElement("span"), { className: "sibling-position", textContent: `${siblings.index} / ${siblings.count}` }),
    arrow("Next version", "›", siblings.next),
  );
  return nav;
}

function setFailure(item: HTMLLIElement, response: AiResponse | null, message?: string): void {
  item.classList.remove("generating");
  item.querySelector(".failure")?.remove();
  if (response?.status !== "Error" && !message) return;
  item.classList.add("failed");
  const failure = document.createElement("div");
  failure.className = "failure";
  failure.setAttribute("role", "status");
  failure.textContent = `Reply failed: ${response?.error_message ?? message}`;
  item.append(failure);
}

function scrollToEnd(): void {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function showEmptyChat(): void {
  const empty = document.createElement("li");
  empty.className = "empty-chat";
  empty.textContent = "Say something to start a conversation.";
  ui.messages.replaceChildren(empty);
}

async function renderConversations(): Promise<void> {
  const query = new URLSearchParams({ page: String(state.page) });
  if (state.search) query.set("search", state.search);
  let page: Page<Conversation>;
  try {
    page = await json<Page<Conversation>>(`/conversations/?${query}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && state.page > 1) {
      state.page = 1;
      return renderConversations();
    }
    throw error;
  }
  ui.list.replaceChildren(
    ...page.results.map((conversation) => {
      const item = document.createElement("li");
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: conversation.title ?? "Untitled" });
      button.dataset.id = conversation.id;
      if (conversation.id === state.conversation?.id) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => openConversation(conversation));
      item.append(button);
      return item;
    }),
  );
  if (page.results.length === 0) {
    ui.list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: state.search ? "No matches." : "No conversations yet." }));
  }
  ui.prev.disabled = !page.previous;
  ui.next.disabled = !page.next;
  ui.pageLabel.textContent = page.count ? `Page ${state.page} of ${Math.ceil(page.count / PAGE_SIZE)}` : "";
}

async function openConversation(conversation: Conversation | null): Promise<void> {
  state.conversation = conversation;
  ui.title.textContent = conversation ? (conversation.title ?? "Untitled") : "New conversation";
  ui.model.disabled = conversation !== null;
  ui.conversationMenu.hidden = conversation === null;
  ui.shareUrl.hidden = true;
  if (conversation) ui.model.value = conversation.model_version;
  for (const button of ui.list.querySelectorAll<HTMLButtonElement>("button[data-id]")) {
    if (button.dataset.id === conversation?.id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
  if (!conversation) {
    showEmptyChat();
    ui.prompt.focus();
    return;
  }
  const messages = await allPages<Message>(`/conversations/${conversation.id}/messages/`);
  ui.messages.replaceChildren(...messages.map(messageElement));
  for (const message of messages) {
    if (message.sender === "ai") {
      const request = messages.find((m) => m.id === message.reply_to);
      const item = ui.messages.querySelector<HTMLLIElement>(`[data-id="${message.id}"]`)!;
      if (request?.ai_response_status === "Error") setFailure(item, null, "the reply did not complete.");
    }
  }
  scrollToEnd();
  ui.prompt.focus();
}

// ---------------------------------------------------------------- streaming

function setStreaming(streaming: boolean): void {
  state.streaming = streaming;
  ui.send.hidden = streaming;
  ui.stop.hidden = !streaming;
}

/** Renders a turn's frames: the stored user message, each delta, and the final frame. */
async function followTurn(response: Response, resumed: InFlight | null): Promise<void> {
  let aiItem: HTMLLIElement | null = resumed ? ui.messages.querySelector<HTMLLIElement>(`[data-id="${resumed.aiMessageId}"]`) : null;
  let inFlight = resumed;
  let waiting: { item: HTMLLIElement; parts: Part[] } | null = null;
  setStreaming(true);
  const onFrame = (frame: Frame) => {
    if (frame.event === "message") {
      const { conversation, user_message, ai_message } = frame.data;
      if (state.conversation?.id !== conversation.id) {
        state.conversation = conversation;
        ui.title.textContent = conversation.title ?? "Untitled";
        ui.model.disabled = true;
        ui.conversationMenu.hidden = false;
        ui.messages.replaceChildren();
        void renderConversations();
      }
      ui.messages.querySelector(".empty-chat")?.remove();
      if (!ui.messages.querySelector(`[data-id="${user_message.id}"]`)) ui.messages.append(messageElement(user_message));
      aiItem = ui.messages.querySelector<HTMLLIElement>(`[data-id="${ai_message.id}"]`) ?? messageElement(ai_message);
      showContent(aiItem, "");
      ui.messages.append(aiItem);
      inFlight = { conversationId: conversation.id, aiMessageId: ai_message.id, parts: [], lastEventId: frame.id };
    } else if (["delta", "reasoning", "tool_call", "tool_result"].includes(frame.event) && aiItem && inFlight) {
      applyFrame(inFlight.parts, frame.event, frame.data);
      inFlight.lastEventId = frame.id;
      showContent(aiItem, inFlight.parts);
    } else if ((frame.event === "done" || frame.event === "error" || frame.event === "requires_action") && aiItem) {
      rememberBookmark(frame.data.bookmark);
      const { ai_message } = frame.data as { ai_message: Message };
      showContent(aiItem, ai_message.parts ?? ai_message.content);
      aiItem.dataset.parts = JSON.stringify(ai_message.parts ?? []);
      setFailure(aiItem, frame.data.ai_response);
      inFlight = null;
      if (frame.event === "requires_action") waiting = { item: aiItem, parts: ai_message.parts ?? [] };
    }
    aiItem?.classList.toggle("generating", inFlight !== null);
    saveInFlight(inFlight);
    scrollToEnd();
  };
  try {
    for await (const frame of readFrames(response.body!)) onFrame(frame);
  } finally {
    setStreaming(false);
  }
  const stopped = waiting as { item: HTMLLIElement; parts: Part[] } | null;
  if (stopped) await answerWaitingCalls(stopped.item, stopped.parts);
}

async function send(content: string): Promise<void> {
  const conversation = state.conversation;
  const path = conversation ? `/conversations/${conversation.id}/add_message/` : "/start_conversation/";
  const attachments = pendingIds();
  const body = { content, tools: BROWSER_TOOLS, ...(conversation ? {} : { model_version: ui.model.value }), ...(attachments.length ? { attachments } : {}) };
  const response = await request(path, { method: "POST", json: body, headers: { Accept: "text/event-stream", "Idempotency-Key": crypto.randomUUID() } });
  clearPending();
  await followTurn(response, null);
}

/** After a reload: show what had arrived, then ask for the rest with Last-Event-ID. */
async function resume(inFlight: InFlight): Promise<void> {
  const conversation = await json<Conversation>(`/conversations/${inFlight.conversationId}/`);
  await openConversation(conversation);
  const item = ui.messages.querySelector<HTMLLIElement>(`[data-id="${inFlight.aiMessageId}"]`);
  if (!item) return saveInFlight(null);
  showContent(item, inFlight.parts);
  item.classList.add("generating");
  const response = await request(`/conversations/${inFlight.conversationId}/stream/`, { headers: { "Last-Event-ID": inFlight.lastEventId } });
  if (response.status === 204) return saveInFlight(null);
  await followTurn(response, inFlight);
}

/**
 * Regenerate or resend: a new branch from `item` on. What the old branch showed from there on is
 * replaced by the streamed turn, then the branch is reloaded so the ‹ n / m › arrows are current.
 */
async function runBranchTurn(item: HTMLLIElement, path: string, body: unknown): Promise<void> {
  const conversation = state.conversation;
  if (!conversation) return;
  const response = await request(path, { method: "POST", json: body, headers: { Accept: "text/event-stream", "Idempotency-Key": crypto.randomUUID() } });
  while (item.nextElementSibling) item.nextElementSibling.remove();
  item.remove();
  await followTurn(response, null);
  await openConversation(conversation);
}

async function switchBranch(leafId: string): Promise<void> {
  const conversation = state.conversation;
  if (!conversation) return;
  await openConversation(await json<Conversation>(`/conversations/${conversation.id}/`, { method: "PATCH", json: { current_leaf: leafId } }));
}

async function shareConversation(): Promise<void> {
  if (!state.conversation) return;
  const link = await json<{ url: string }>(`/conversations/${state.conversation.id}/share/`, { method: "POST" });
  ui.shareUrl.value = link.url;
  ui.shareUrl.hidden = false;
  ui.shareUrl.select();
  await navigator.clipboard?.writeText(link.url).catch(() => undefined);
}

async function exportConversation(): Promise<void> {
  if (!state.conversation) return;
  const response = await request(`/conversations/${state.conversation.id}/export/?format=json`);
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") ?? "")?.[1] ?? "conversation.json";
  const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(await response.blob()), download: name });
  link.click();
  URL.revokeObjectURL(link.href);
}

interface SearchHit {
  conversation: { id: string; title: string | null };
  message: Message;
  snippet: string;
}

/** Message search: hits with their highlighted snippets (HTML-safe from the API) in place of the conversation list. */
async function searchMessages(query: string): Promise<void> {
  if (!query.trim()) {
    ui.searchResults.hidden = true;
    ui.list.hidden = false;
    return;
  }
  const page = await json<Page<SearchHit>>(`/search/?q=${encodeURIComponent(query)}&page_size=20`);
  ui.list.hidden = true;
  ui.searchResults.hidden = false;
  ui.searchResults.replaceChildren(
    ...page.results.map((hit) => {
      const item = document.createElement("li");
      const button = Object.assign(document.createElement("button"), { type: "button", className: "search-hit" });
      const title = Object.assign(document.createElement("strong"), { textContent: hit.conversation.title ?? "Untitled" });
      const snippet = Object.assign(document.createElement("span"), { className: "snippet", innerHTML: hit.snippet });
      button.append(title, snippet);
      button.addEventListener("click", () => void openAtMessage(hit));
      item.append(button);
      return item;
    }),
  );
  if (page.results.length === 0) ui.searchResults.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "No messages match." }));
}

/** Opens the hit's conversation on the branch that holds it, scrolled to the message. */
async function openAtMessage(hit: SearchHit): Promise<void> {
  let conversation = await json<Conversation>(`/conversations/${hit.conversation.id}/`);
  const branch = await allPages<Message>(`/conversations/${conversation.id}/messages/`);
  if (!branch.some((m) => m.id === hit.message.id)) {
    conversation = await json<Conversation>(`/conversations/${conversation.id}/`, { method: "PATCH", json: { current_leaf: hit.message.id } });
  }
  await openConversation(conversation);
  const item = ui.messages.querySelector<HTMLLIElement>(`[data-id="${hit.message.id}"]`);
  item?.scrollIntoView({ block: "center" });
  item?.classList.add("found");
}

/** Forks at the last message shown: the copy opens as a new conversation. */
async function forkConversation(): Promise<void> {
  const conversation = state.conversation;
  const last = [...ui.messages.querySelectorAll<HTMLLIElement>(".message[data-id]")].at(-1);
  if (!conversation || !last || state.streaming) return;
  const fork = await json<Conversation>(`/conversations/${conversation.id}/fork/`, { method: "POST", json: { message: last.dataset.id } });
  await renderConversations();
  await openConversation(fork);
}

// ---------------------------------------------------------------- message actions

function startEditing(item: HTMLLIElement, message: Message): void {
  const content = item.querySelector<HTMLDivElement>(".content")!;
  const editor = Object.assign(document.createElement("textarea"), { value: message.content, rows: 3 });
  editor.setAttribute("aria-label", "Edit message text");
  const save = Object.assign(document.createElement("button"), { type: "button", textContent: "Save", className: "primary" });
  save.title = "Change this message in place";
  const saveAndSend = Object.assign(document.createElement("button"), { type: "button", textContent: "Save & send" });
  saveAndSend.title = "Send the new text as a new branch; the old one stays one arrow away";
  const cancel = Object.assign(document.createElement("button"), { type: "button", textContent: "Cancel" });
  const controls = document.createElement("div");
  controls.className = "row";
  controls.append(save, saveAndSend, cancel);
  content.hidden = true;
  item.append(editor, controls);
  editor.focus();
  const close = () => {
    editor.remove();
    controls.remove();
    content.hidden = false;
  };
  cancel.addEventListener("click", close);
  save.addEventListener("click", async () => {
    try {
      const edited = await json<Message>(`/messages/${message.id}/edit_message/`, { method: "PATCH", json: { content: editor.value } });
      Object.assign(message, edited);
      content.textContent = edited.content;
      renderMeta(item, message);
      close();
    } catch (error) {
      alert((error as Error).message);
    }
  });
  saveAndSend.addEventListener("click", () => {
    if (state.streaming) return;
    runBranchTurn(item, `/messages/${message.id}/resend/`, { content: editor.value, tools: BROWSER_TOOLS }).catch((error: Error) => alert(error.message));
  });
}

async function deleteMessage(item: HTMLLIElement, message: Message): Promise<void> {
  await json<Message>(`/messages/${message.id}/mark_deleted/`, { method: "PATCH" });
  item.remove();
}

// ---------------------------------------------------------------- wiring

/** "gpt-4o · 128k · images, tools": what the picker tells about a model. */
function modelLabel(model: Models["models"][number]): string {
  const window = model.context_window >= 1_000 ? `${Math.round(model.context_window / 1_000)}k` : String(model.context_window);
  const can = [model.capabilities.vision && "images", model.capabilities.tools && "tools", model.capabilities.reasoning && "reasoning"].filter(Boolean);
  return [model.id, window, can.join(", ")].filter(Boolean).join(" · ");
}

async function showApp(): Promise<void> {
  const [me, models] = await Promise.all([
    json<{ email: string }>("/users/me/"),
    json<Models>("/models/"),
  ]);
  ui.userEmail.textContent = me.email;
  ui.model.replaceChildren(...models.models.map((model) => Object.assign(document.createElement("option"), { value: model.id, textContent: modelLabel(model) })));
  ui.model.value = models.default_model;
  await renderConversations();
  // Shown only once loaded, so nothing typed can race the initial rendering.
  ui.auth.hidden = true;
  ui.app.hidden = false;
  const inFlight = loadInFlight();
  if (inFlight) await resume(inFlight);
  else await openConversation(null);
}

function showAuth(): void {
  ui.app.hidden = true;
  ui.auth.hidden = false;
  ui.authEmail.focus();
}

async function authenticate(action: "login" | "signup"): Promise<void> {
  ui.authError.textContent = "";
  try {
    if (action === "login") await logIn(ui.authEmail.value, ui.authPassword.value);
    else await signUp(ui.authEmail.value, ui.authPassword.value, ui.authName.value.trim());
    await showApp();
  } catch (error) {
    ui.authError.textContent = (error as Error).message;
  }
}

ui.authForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void authenticate("login");
});
ui.signup.addEventListener("click", () => void authenticate("signup"));
ui.logout.addEventListener("click", async () => {
  await request("/auth/logout/", { method: "POST" }).catch(() => undefined);
  saveTokens(null);
  saveInFlight(null);
  showAuth();
});
ui.newChat.addEventListener("click", () => void openConversation(null));
ui.fork.addEventListener("click", () => forkConversation().catch((error: Error) => alert(error.message)));
ui.share.addEventListener("click", () => shareConversation().catch((error: Error) => alert(error.message)));
ui.exportButton.addEventListener("click", () => exportConversation().catch((error: Error) => alert(error.message)));
ui.messageSearchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  searchMessages(ui.messageSearch.value).catch((error: Error) => alert(error.message));
});
let searchTimer: ReturnType<typeof setTimeout> | undefined;
ui.search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.search = ui.search.value.trim();
    state.page = 1;
    void renderConversations();
  }, 250);
});
ui.prev.addEventListener("click", () => {
  state.page--;
  void renderConversations();
});
ui.next.addEventListener("click", () => {
  state.page++;
  void renderConversations();
});
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = ui.prompt.value;
  if (!content.trim() || state.streaming) return;
  ui.prompt.value = "";
  send(content).catch((error: Error) => {
    const failure = Object.assign(document.createElement("li"), { className: "message ai failed" });
    failure.textContent = `Could not send: ${error.message}`;
    ui.messages.append(failure);
    ui.prompt.value = content;
  });
  ui.prompt.focus();
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.stop.addEventListener("click", () => {
  if (state.conversation) void request(`/conversations/${state.conversation.id}/cancel/`, { method: "POST" }).catch(() => undefined);
  ui.prompt.focus();
});

wireAttachments(document.getElementById("attach") as HTMLButtonElement, ui.messages, ui.prompt);

if (loadTokens()) showApp().catch(showAuth);
else showAuth();
