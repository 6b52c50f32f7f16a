// Generated from the Rust view models by `cargo test -p quire-desktop --lib typescript`
// (src-tauri/src/typescript.rs); do not edit. QUIRE_WRITE_TYPES=1 on that command writes it.
// The shapes that cross the IPC boundary (src-tauri/IPC.md), as the core and the shell
// serialize them (snake_case serde names). View models only: no token ever.

/** Ids are UUIDs in their usual text form. */
export type Uuid = string;

/**
 * What the UI switches on. Serialized in `snake_case` (`not_signed_in`, …);
 * never derived from message text. The one list of codes the UI knows
 * (`ui/src/lib/types.ts` is generated from it); the companion's own codes
 * reach the UI as one of these ([`ErrorCode::for_companion`]).
 */
export type ErrorCode =
  | "not_configured"
  | "not_signed_in"
  | "invalid_credentials"
  | "sign_in_cancelled"
  | "offline"
  | "platform_unavailable"
  | "forbidden"
  | "not_found"
  | "not_a_pdf"
  | "empty_file"
  | "too_large"
  | "conflict"
  | "bad_input"
  | "rate_limited"
  | "keyring_unavailable"
  | "cancelled"
  | "file_unreadable"
  | "file_unwritable"
  | "unexpected"
  | "invalid_address"
  | "insecure_server"
  | "server_unreachable"
  | "not_a_quire_server"
  | "sign_up_closed"
  | "account_exists"
  | "weak_password";

/**
 * An error as the UI receives it.
 */
export type ErrorView = {
  /**
   * What the UI switches on.
   */
  code: ErrorCode,
  /**
   * What happened and what to do, for the person.
   */
  message: string,
};

/**
 * The signed-in person.
 */
export type User = {
  /**
   * The account's id (`auth.users.id`, the JWT's `sub`).
   */
  id: string,
  /**
   * The account's email, when the sign-in service gave one.
   */
  email: string | null,
};

/**
 * A conversation.
 */
export type Conversation = {
  /**
   * The `conversations.id`.
   */
  id: string,
  /**
   * The conversation's title (the start of its first question, unless
   * given or renamed); `None` when it has none.
   */
  title: string | null,
  /**
   * When it was started.
   */
  created_at: string,
  /**
   * When it last changed; a new question counts.
   */
  updated_at: string,
  /**
   * When the person archived it; `None` while it is not archived.
   */
  archived_at: string | null,
  /**
   * The documents the conversation asks about (its scope); empty: all of
   * the person's documents.
   */
  document_ids: Array<string>,
};

/**
 * Who wrote a message.
 */
export type Role = "user" | "assistant";

/**
 * Where a message stands: streaming until it is complete, stopped by its
 * owner or failed (the text so far is kept in both).
 */
export type MessageStatus = "streaming" | "complete" | "stopped" | "failed";

/**
 * A message's citation as the UI reads it (`src-tauri/IPC.md`): the
 * wire's [`Citation`], without the platform's relevance `score`.
 */
export type Citation = {
  /**
   * The marker's number as written in the text (`"2"` for `[2]`).
   */
  key: string | null,
  /**
   * The cited `document_chunks.id`.
   */
  chunk_id: string | null,
  /**
   * The user's document the chunk is from.
   */
  document_id: string | null,
  /**
   * The document's title.
   */
  title: string | null,
  /**
   * The first page the cited chunk spans (where the viewer opens).
   */
  page: number | null,
  /**
   * The last page it spans (a chunk may cross a page break); absent on
   * answers stored before it existed (read it as `page`).
   */
  page_end?: number | null,
  /**
   * The first 300 characters of the chunk.
   */
  excerpt: string | null,
};

/**
 * A chunk an answer was given (its `context` event).
 */
export type ContextChunk = {
  /**
   * The `document_chunks.id` the client sent.
   */
  id: string,
  /**
   * The user's document the chunk is from.
   */
  document_id: string,
  /**
   * The platform's chunk.
   */
  chunk_id: string | null,
  /**
   * The first page the chunk spans (null when unknown).
   */
  page: number | null,
  /**
   * The last page it spans; absent on answers stored before it existed
   * (read it as `page`).
   */
  page_end?: number | null,
  /**
   * The document's title.
   */
  title: string,
};

/**
 * A message as the UI shows it.
 */
export type Message = {
  /**
   * The `chat_messages.id`.
   */
  id: string,
  /**
   * The conversation it is in.
   */
  conversation_id: string,
  /**
   * Position in the conversation (unknown until the row is read).
   */
  seq: number | null,
  /**
   * Who wrote it: a question or an answer.
   */
  role: Role,
  /**
   * Whether it is still being written, and how it ended.
   */
  status: MessageStatus,
  /**
   * The text so far (the whole text once final).
   */
  content: string,
  /**
   * The sources the text cites, by their `[n]` markers.
   */
  citations: Array<Citation>,
  /**
   * The chunks the answer was given (`context` event).
   */
  sources: Array<ContextChunk>,
  /**
   * For an answer: the question's message id.
   */
  question_id: string | null,
  /**
   * Why it failed, for a person.
   */
  error: string | null,
  /**
   * Names of the tools the agent called so far.
   */
  tools: Array<string>,
};

/**
 * `documents.status`.
 */
export type DocumentStatus =
  | "uploading"
  | "stored"
  | "extracting"
  | "indexing"
  | "ready"
  | "failed"
  | "no_text";

/**
 * Bytes sent of a file being uploaded from this device.
 */
export type UploadProgress = {
  /**
   * Bytes sent so far.
   */
  sent: number,
  /**
   * The file's size in bytes.
   */
  total: number,
};

/**
 * Where an `uploading` document's upload stands, seen from this device.
 */
export type Uploading = "here" | "elsewhere" | "interrupted";

/**
 * A document.
 */
export type Document = {
  /**
   * The `documents.id`.
   */
  id: string,
  /**
   * The document's title: its file's name without the extension, as
   * uploaded.
   */
  title: string,
  /**
   * Where ingestion stands.
   */
  status: DocumentStatus,
  /**
   * Why it failed, for a person; for an `uploading` one, why this
   * device's upload was cut.
   */
  error: string | null,
  /**
   * How many pages it has, once ingestion has counted them.
   */
  page_count: number | null,
  /**
   * The file's size in bytes.
   */
  byte_size: number | null,
  /**
   * When the row last changed; older news of it is ignored.
   */
  updated_at: string,
  /**
   * Set while this device uploads it.
   */
  upload: UploadProgress | null,
  /**
   * Where its upload stands as this device sees it ([`uploading`]); set on
   * what the state hands out, `None` once it is no longer `uploading`.
   */
  uploading: Uploading | null,
};

/**
 * One change to the state, for the UI.
 */
export type Update =
  | { "type": "conversation" } & Conversation
  | { "type": "conversation_removed", id: string }
  | { "type": "message", message: Message, appended: string | null }
  | { "type": "document" } & Document
  | { "type": "document_removed", id: string };

/**
 * One retrieved chunk of one of the user's documents.
 */
export type ChunkHit = {
  /**
   * The `document_chunks` row id: what the companion is sent.
   */
  id: string,
  /**
   * The user's document the chunk is from.
   */
  document_id: string,
  /**
   * The platform's chunk id (shared by users who uploaded the same file).
   */
  chunk_id: string,
  /**
   * The document's title.
   */
  title: string,
  /**
   * The first (1-based) page the chunk spans, when the extraction knew
   * the pages.
   */
  page: number | null,
  /**
   * The last page the chunk spans: a chunk may cross a page break
   * (`page` 3, `page_end` 4). Equal to `page` for one page, `None` with it.
   */
  page_end?: number | null,
  /**
   * The chunk's text.
   */
  text: string,
  /**
   * Rank of the stage that answered (scales differ between stages).
   */
  score: number,
};

/**
 * The ids of an answer that was asked for: its conversation (new when
 * none was given) and its message. What the UI follows it by.
 */
export type AskResult = {
  /**
   * The conversation the question went into.
   */
  conversation_id: string,
  /**
   * The answer's `chat_messages.id`, which its events carry.
   */
  message_id: string,
};

/**
 * What happens to one file, for a progress view.
 */
export type UploadEvent =
  | { "type": "checked", path: string, bytes: number }
  | { "type": "registered", path: string, document_id: string }
  | { "type": "progress", document_id: string, sent: number, total: number }
  | { "type": "resumable", document_id: string, upload_url: string }
  | { "type": "stored", document_id: string }
  | { "type": "failed", path: string, error: ErrorView };

/**
 * Who is signed in, as the UI sees it: the sign-out reason as a sentence.
 */
export type AuthStatus =
  | { "state": "signed_in", user: User }
  | { "state": "signed_out", reason: string | null };

/**
 * The indicator's states.
 */
export type LiveStateName = "live" | "connecting" | "reconnecting" | "offline";

/**
 * The live-updates indicator: `connecting` until joined *and* caught up,
 * `offline` while signed out.
 */
export type LiveState = {
  state: LiveStateName,
  detail: string | null,
  retry_in_ms: number | null,
};

/**
 * The Quire server the window talks to, as the connect and sign-in screens
 * show it.
 */
export type Server = {
  /**
   * The server's address (the companion's URL).
   */
  address: string,
  /**
   * Its host (and port), for "Server: …".
   */
  host: string,
  /**
   * Set by the environment or `config.toml`, so not changed from the window.
   */
  managed: boolean,
};

/**
 * What the window shows at start: who is signed in, the live indicator,
 * the profile, the project's host and the Quire server (none: the window
 * asks for one, offering the build's default address).
 */
export type Session = {
  status: AuthStatus,
  live: LiveState,
  profile: string,
  api_host: string,
  server: Server | null,
  default_server: string | null,
};

/**
 * The sign-in methods the project allows (from GoTrue's `/settings`).
 */
export type SignInMethods = {
  /**
   * Email and password.
   */
  password: boolean,
  /**
   * New accounts may be created.
   */
  signup: boolean,
  /**
   * A new account confirms its address by email before signing in.
   */
  confirm_email: boolean,
  /**
   * The enabled OAuth providers, by GoTrue's name (`github`, `google`…).
   */
  providers: Array<string>,
};

/**
 * How a sign-up ended.
 */
export type SignUp = { "state": "signed_in", user: User } | { "state": "check_email", email: string };

/**
 * Everything the sidebar lists, as of `rev`.
 */
export type Snapshot = {
  rev: number,
  conversations: Array<Conversation>,
  documents: Array<Document>,
};

/**
 * A page of a conversation, as of `rev`.
 */
export type ConversationPage = {
  rev: number,
  /**
   * Oldest first.
   */
  messages: Array<Message>,
  /**
   * The seq to pass as `before` for the previous page; null when there is none.
   */
  before: number | null,
};

/**
 * What one `quire://update` carries: one of the core's updates as it is, or
 * only the text a streaming message gained.
 */
export type UpdateView = Update | MessageText;

/**
 * Text a streaming message gained, with nothing else of it changed: `text`
 * goes at `at` of its content, counted in UTF-16 code units (a JavaScript
 * string's length), so a copy that has more already, or less, can tell.
 */
export type MessageText = {
  "type": "message_text",
  id: string,
  conversation_id: string,
  at: number,
  text: string,
};

/**
 * `quire://update`'s payload: an update and its session-wide `rev`.
 */
export type UpdateEvent = {
  rev: number,
  update: UpdateView,
};
