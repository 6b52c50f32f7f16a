// The shapes that cross the IPC boundary (src-tauri/IPC.md), as the core
// serializes them (snake_case serde names). View models only: no token ever.

export type Uuid = string;

export type ErrorCode =
  | 'not_configured'
  | 'not_signed_in'
  | 'invalid_credentials'
  | 'sign_in_cancelled'
  | 'offline'
  | 'platform_unavailable'
  | 'forbidden'
  | 'not_found'
  | 'not_a_pdf'
  | 'empty_file'
  | 'too_large'
  | 'conflict'
  | 'bad_input'
  | 'rate_limited'
  | 'keyring_unavailable'
  | 'cancelled'
  | 'file_unreadable'
  | 'file_unwritable'
  | 'unexpected';

/** Every rejected command carries one of these. */
export interface ErrorView {
  code: ErrorCode | string;
  message: string;
}

export interface User {
  id: Uuid;
  email: string | null;
}

export type AuthStatus =
  | { state: 'signed_in'; user: User }
  | { state: 'signed_out'; reason: string | null };

export type LiveStateName = 'live' | 'connecting' | 'reconnecting' | 'offline';

export interface LiveState {
  state: LiveStateName;
  detail: string | null;
  retry_in_ms: number | null;
}

export interface Session {
  status: AuthStatus;
  live: LiveState;
  profile: string;
  api_host: string;
}

export interface Conversation {
  id: Uuid;
  title: string | null;
  created_at: string;
  updated_at: string;
  archived_at?: string | null;
}

export type Role = 'user' | 'assistant';
export type MessageStatus = 'streaming' | 'complete' | 'stopped' | 'failed';

export interface Citation {
  key?: string | null;
  chunk_id?: Uuid | null;
  document_id?: Uuid | null;
  title?: string | null;
  /** The first page the cited chunk spans (where the viewer opens). */
  page?: number | null;
  /** The last page it spans (a chunk may cross a page break); absent on answers stored before it existed. */
  page_end?: number | null;
  excerpt?: string | null;
}

export interface ContextChunk {
  id: Uuid;
  document_id: Uuid;
  chunk_id?: Uuid | null;
  page?: number | null;
  page_end?: number | null;
  title: string;
}

export interface Message {
  id: Uuid;
  conversation_id: Uuid;
  seq: number | null;
  role: Role;
  status: MessageStatus;
  content: string;
  citations: Citation[];
  sources: ContextChunk[];
  question_id: Uuid | null;
  error: string | null;
  tools: string[];
}

export type DocumentStatus =
  | 'uploading'
  | 'stored'
  | 'extracting'
  | 'indexing'
  | 'ready'
  | 'failed'
  | 'no_text';

export interface UploadProgress {
  sent: number;
  total: number;
}

export interface Document {
  id: Uuid;
  title: string;
  status: DocumentStatus;
  error: string | null;
  page_count: number | null;
  byte_size: number | null;
  updated_at: string;
  upload: UploadProgress | null;
}

export type Update =
  | ({ type: 'conversation' } & Conversation)
  | { type: 'conversation_removed'; id: Uuid }
  | { type: 'message'; message: Message; appended: string | null }
  | ({ type: 'document' } & Document)
  | { type: 'document_removed'; id: Uuid };

export interface UpdateEvent {
  rev: number;
  update: Update;
}

export interface Snapshot {
  rev: number;
  conversations: Conversation[];
  documents: Document[];
}

export interface ConversationPage {
  rev: number;
  /** Oldest first. */
  messages: Message[];
  /** The seq to pass as `before` for the previous page; null when there is none. */
  before: number | null;
}

export interface ChunkHit {
  id: Uuid;
  document_id: Uuid;
  chunk_id: Uuid | null;
  title: string;
  /** The first and last page the chunk spans (equal for one page; null when unknown). */
  page: number | null;
  page_end?: number | null;
  text: string;
  score: number;
}

export interface AskResult {
  conversation_id: Uuid;
  message_id: Uuid;
}

export type UploadEvent =
  | { type: 'checked'; path: string; bytes: number }
  | { type: 'registered'; path: string; document_id: Uuid }
  | { type: 'progress'; document_id: Uuid; sent: number; total: number }
  | { type: 'stored'; document_id: Uuid }
  | { type: 'failed'; path: string; error: ErrorView };

/** What the window reports while files are dragged over it. */
export type DragDrop =
  | { type: 'enter' | 'over'; paths: string[] }
  | { type: 'drop'; paths: string[] }
  | { type: 'leave' };
