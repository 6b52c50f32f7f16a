// The one module through which the UI reaches the Rust shell (src-tauri/IPC.md).
// Components receive a `Backend`; `createTauriBackend()` is the real one, and
// `createFakeBackend()` (fake-backend.ts) stands in for tests and `?fake` dev runs.

import type {
  AskResult,
  AuthStatus,
  ChunkHit,
  Conversation,
  ConversationPage,
  ErrorCode,
  ErrorView,
  LiveState,
  Server,
  Session,
  SignInMethods,
  SignUp,
  Snapshot,
  UpdateEvent,
  UploadEvent,
  User,
  Uuid,
} from './types';

export type Unlisten = () => void;

export interface Backend {
  session(): Promise<Session>;
  /** Finds the Quire server at a typed address and keeps it for this profile. */
  connect(address: string): Promise<Server>;
  signInMethods(): Promise<SignInMethods>;
  signIn(email: string, password: string): Promise<User>;
  /** `provider` is one of `signInMethods().providers`. */
  signInBrowser(provider: string): Promise<User>;
  cancelSignIn(): Promise<void>;
  signUp(email: string, password: string): Promise<SignUp>;
  sendPasswordReset(email: string): Promise<void>;
  /** `code` is the reset email's six-digit code, or its link pasted. */
  resetPassword(email: string, code: string, password: string): Promise<User>;
  signOut(): Promise<void>;

  snapshot(): Promise<Snapshot>;
  openConversation(id: Uuid, before?: number, limit?: number): Promise<ConversationPage>;
  searchConversations(query: string): Promise<Conversation[]>;
  renameConversation(id: Uuid, title: string): Promise<Conversation>;
  deleteConversation(id: Uuid): Promise<void>;
  /** A new, empty conversation that asks about `documentIds` only (chips chosen before the first question). */
  createConversation(title: string, documentIds: Uuid[]): Promise<Conversation>;
  /** Limits a conversation to `documentIds` (empty: all documents); stored, so every device has it. */
  setScope(id: Uuid, documentIds: Uuid[]): Promise<Conversation>;

  /** The sources for `text`, only from the documents `conversationId` asks about. */
  retrieve(text: string, conversationId?: Uuid | null): Promise<ChunkHit[]>;
  ask(conversationId: Uuid | null, text: string, sources: ChunkHit[]): Promise<AskResult>;
  /** A new version of an answer (the same question asked again with `sources`); it streams as an answer does. */
  regenerate(messageId: Uuid, sources: ChunkHit[]): Promise<AskResult>;
  stop(messageId: Uuid): Promise<void>;

  /** Uploads the paths of a drop on the window; the shell refuses any path that was not dropped. */
  uploadFiles(paths: string[]): Promise<void>;
  pickFiles(): Promise<number>;
  /** The files handed to Quire ("Open with Quire") since the last call; upload them with `uploadFiles`. */
  openedFiles(): Promise<string[]>;
  retryDocument(id: Uuid): Promise<void>;
  deleteDocument(id: Uuid): Promise<void>;
  documentPdf(id: Uuid): Promise<Uint8Array>;
  saveDocument(id: Uuid): Promise<boolean>;
  /** Saves a conversation as Markdown through a native dialog; `false` when cancelled. */
  exportConversation(id: Uuid): Promise<boolean>;
  /** An answer's text with the sources it cites listed under it, for the clipboard. */
  answerText(messageId: Uuid): Promise<string>;
  /** First questions for an empty conversation, from the user's own documents. */
  suggestions(): Promise<string[]>;
  /** Asks the person in a native dialog, then opens the link; `false` when they declined. */
  openLink(url: string): Promise<boolean>;

  onAuth(handler: (status: AuthStatus) => void): Promise<Unlisten>;
  onLive(handler: (live: LiveState) => void): Promise<Unlisten>;
  onUpdate(handler: (event: UpdateEvent) => void): Promise<Unlisten>;
  onResync(handler: () => void): Promise<Unlisten>;
  onUpload(handler: (event: UploadEvent) => void): Promise<Unlisten>;
  onDragDrop(handler: (event: DragDrop) => void): Promise<Unlisten>;
  /** A second launch handed files to the window: call `openedFiles`. */
  onOpened(handler: () => void): Promise<Unlisten>;
}

/** What the window reports while files are dragged over it (Tauri's drag-drop events). */
export type DragDrop =
  | { type: 'enter' | 'over'; paths: string[] }
  | { type: 'drop'; paths: string[] }
  | { type: 'leave' };

/** Turns whatever a rejected command gave into an `ErrorView`. */
export function toErrorView(error: unknown): ErrorView {
  if (error && typeof error === 'object' && 'code' in error && 'message' in error) {
    const { code, message } = error as { code: unknown; message: unknown };
    // The shell rejects with the core's ErrorView, whose code is an ErrorCode.
    return { code: String(code) as ErrorCode, message: String(message) };
  }
  if (typeof error === 'string') return { code: 'unexpected', message: error };
  if (error instanceof Error) return { code: 'unexpected', message: error.message };
  return { code: 'unexpected', message: 'Something went wrong.' };
}

/** The real backend: Tauri commands and events. Loaded lazily so tests never touch Tauri. */
export async function createTauriBackend(): Promise<Backend> {
  const { invoke } = await import('@tauri-apps/api/core');
  const { listen } = await import('@tauri-apps/api/event');
  const { getCurrentWebview } = await import('@tauri-apps/api/webview');

  const call = async <T>(command: string, args?: Record<string, unknown>): Promise<T> => {
    try {
      return await invoke<T>(command, args);
    } catch (error) {
      throw toErrorView(error);
    }
  };
  const on = <T>(name: string, handler: (payload: T) => void): Promise<Unlisten> =>
    listen<T>(name, (event) => handler(event.payload));

  return {
    session: () => call<Session>('session'),
    connect: (address) => call<Server>('connect', { address }),
    signInMethods: () => call<SignInMethods>('sign_in_methods'),
    signIn: (email, password) => call<User>('sign_in', { email, password }),
    signInBrowser: (provider) => call<User>('sign_in_browser', { provider }),
    cancelSignIn: () => call<null>('cancel_sign_in').then(() => undefined),
    signUp: (email, password) => call<SignUp>('sign_up', { email, password }),
    sendPasswordReset: (email) => call<null>('send_password_reset', { email }).then(() => undefined),
    resetPassword: (email, code, password) => call<User>('reset_password', { email, code, password }),
    signOut: () => call<null>('sign_out').then(() => undefined),

    snapshot: () => call<Snapshot>('snapshot'),
    openConversation: (id, before, limit) => {
      const args: Record<string, unknown> = { id };
      if (before !== undefined) args.before = before;
      if (limit !== undefined) args.limit = limit;
      return call<ConversationPage>('open_conversation', args);
    },
    searchConversations: (query) => call<Conversation[]>('search_conversations', { query }),
    renameConversation: (id, title) => call<Conversation>('rename_conversation', { id, title }),
    deleteConversation: (id) => call<null>('delete_conversation', { id }).then(() => undefined),

    createConversation: (title, documentIds) =>
      call<Conversation>('create_conversation', { title, document_ids: documentIds }),
    setScope: (id, documentIds) => call<Conversation>('set_scope', { id, document_ids: documentIds }),

    retrieve: (text, conversationId = null) => call<ChunkHit[]>('retrieve', { text, conversation_id: conversationId }),
    ask: (conversationId, text, sources) =>
      call<AskResult>('ask', { conversation_id: conversationId, text, sources }),
    regenerate: (messageId, sources) => call<AskResult>('regenerate', { message_id: messageId, sources }),
    stop: (messageId) => call<null>('stop', { message_id: messageId }).then(() => undefined),

    uploadFiles: (paths) => call<null>('upload_files', { paths }).then(() => undefined),
    pickFiles: () => call<number>('pick_files'),
    openedFiles: () => call<string[]>('opened_files'),
    retryDocument: (id) => call<null>('retry_document', { id }).then(() => undefined),
    deleteDocument: (id) => call<null>('delete_document', { id }).then(() => undefined),
    documentPdf: async (id) => {
      const bytes = await call<ArrayBuffer | number[]>('document_pdf', { id });
      return bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : Uint8Array.from(bytes);
    },
    saveDocument: (id) => call<boolean>('save_document', { id }),
    exportConversation: (id) => call<boolean>('export_conversation', { id }),
    answerText: (messageId) => call<string>('answer_text', { message_id: messageId }),
    suggestions: () => call<string[]>('suggestions'),
    openLink: (url) => call<boolean>('open_link', { url }),

    onAuth: (handler) => on<AuthStatus>('quire://auth', handler),
    onLive: (handler) => on<LiveState>('quire://live', handler),
    onUpdate: (handler) => on<UpdateEvent>('quire://update', handler),
    onResync: (handler) => on<null>('quire://resync', () => handler()),
    onUpload: (handler) => on<UploadEvent>('quire://upload', handler),
    onOpened: (handler) => on<null>('quire://opened', () => handler()),
    onDragDrop: (handler) =>
      getCurrentWebview().onDragDropEvent((event) => {
        const p = event.payload;
        if (p.type === 'leave') handler({ type: 'leave' });
        else if (p.type === 'drop') handler({ type: 'drop', paths: p.paths });
        else if (p.type === 'enter') handler({ type: 'enter', paths: p.paths });
        else handler({ type: 'over', paths: [] });
      }),
  };
}
