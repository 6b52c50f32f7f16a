// The UI's copy of the session's state, and the only place where `snapshot`,
// `open_conversation` and `quire://update` results meet. Pure TypeScript (no
// Svelte) so the reconciliation rules can be tested on their own.
//
// Rules (src-tauri/IPC.md): `rev` is one counter for the whole session.
// A snapshot or page read at `rev` R already contains every update with
// rev <= R. The store keeps the last rev applied per entity and ignores
// anything not newer (duplicates, late arrivals). A removal leaves a
// tombstone so a late update cannot bring the entity back. `resync` means
// re-read: a newer snapshot replaces what it covers and drops what it no
// longer lists, unless an update newer than the snapshot says otherwise.

import type {
  Conversation,
  ConversationPage,
  Document,
  Message,
  Snapshot,
  UpdateEvent,
  Uuid,
} from './types';

/** What an apply call changed, so views refresh only what they show. */
export interface Change {
  conversations: boolean;
  documents: boolean;
  /** Conversations whose messages changed. */
  messages: Set<Uuid>;
  /**
   * Conversations to read again: a message's new text came without the text
   * before it (the page held is no longer whole).
   */
  reread: Set<Uuid>;
}

type Listener = (change: Change) => void;

interface PageState {
  /** The rev the latest page was read at. */
  rev: number;
  /** `before` for the next older page; null when the start is loaded. */
  before: number | null;
}

const NONE = Number.NEGATIVE_INFINITY;

export class QuireStore {
  private conversations = new Map<Uuid, Conversation>();
  private documents = new Map<Uuid, Document>();
  private messages = new Map<Uuid, Message>();
  /** Last rev applied, per entity key (`c:`, `d:`, `m:` + id). */
  private revs = new Map<string, number>();
  /** Rev of each removal, per entity key. */
  private tombstones = new Map<string, number>();
  private snapshotRev = NONE;
  private pages = new Map<Uuid, PageState>();
  private listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forgets everything (sign-out: the next session's revs start again). */
  reset(): void {
    this.conversations.clear();
    this.documents.clear();
    this.messages.clear();
    this.revs.clear();
    this.tombstones.clear();
    this.pages.clear();
    this.snapshotRev = NONE;
    this.emit({ conversations: true, documents: true, messages: new Set(), reread: new Set() });
  }

  // ---- reading ----

  /** Most recently updated first; archived ones last. */
  conversationList(): Conversation[] {
    return [...this.conversations.values()].sort(compareConversations);
  }

  conversation(id: Uuid): Conversation | undefined {
    return this.conversations.get(id);
  }

  /** Newest first, then by title. */
  documentList(): Document[] {
    return [...this.documents.values()].sort(
      (a, b) => time(b.updated_at) - time(a.updated_at) || cmp(a.title, b.title) || cmp(a.id, b.id),
    );
  }

  document(id: Uuid): Document | undefined {
    return this.documents.get(id);
  }

  /** A conversation's known messages in order (seq; a question before its answer). */
  messagesOf(conversationId: Uuid): Message[] {
    const list: Message[] = [];
    for (const m of this.messages.values()) if (m.conversation_id === conversationId) list.push(m);
    return list.sort(compareMessages);
  }

  message(id: Uuid): Message | undefined {
    return this.messages.get(id);
  }

  /** Whether this conversation was deleted (here or on another device). */
  wasRemoved(conversationId: Uuid): boolean {
    return this.tombstones.has('c:' + conversationId) && !this.conversations.has(conversationId);
  }

  /** Whether the latest page of this conversation has been read. */
  isOpened(conversationId: Uuid): boolean {
    return this.pages.has(conversationId);
  }

  /** The `before` cursor for the next older page, or null when all is loaded. */
  olderCursor(conversationId: Uuid): number | null {
    return this.pages.get(conversationId)?.before ?? null;
  }

  // ---- applying ----

  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.rev < this.snapshotRev) return;
    const rev = snapshot.rev;
    this.snapshotRev = rev;
    const change = emptyChange();

    const seenConversations = new Set<Uuid>();
    for (const c of snapshot.conversations) {
      seenConversations.add(c.id);
      if (this.put('c:' + c.id, rev)) {
        this.conversations.set(c.id, c);
        change.conversations = true;
      }
    }
    for (const id of [...this.conversations.keys()]) {
      if (!seenConversations.has(id) && this.lastRev('c:' + id) <= rev) {
        this.removeConversation(id, rev, change);
      }
    }

    const seenDocuments = new Set<Uuid>();
    for (const d of snapshot.documents) {
      seenDocuments.add(d.id);
      if (this.put('d:' + d.id, rev)) {
        this.documents.set(d.id, d);
        change.documents = true;
      }
    }
    for (const id of [...this.documents.keys()]) {
      if (!seenDocuments.has(id) && this.lastRev('d:' + id) <= rev) {
        this.documents.delete(id);
        this.tombstones.set('d:' + id, rev);
        change.documents = true;
      }
    }
    this.emit(change);
  }

  /**
   * Applies an `open_conversation` result: `older` for a page fetched with
   * `before`, otherwise the latest page (which also drops messages in its
   * range that it no longer lists).
   */
  applyPage(conversationId: Uuid, page: ConversationPage, older = false): void {
    const change = emptyChange();
    if (this.lastTombstone('c:' + conversationId) >= page.rev) return;
    const current = this.pages.get(conversationId);
    if (older) {
      if (current) current.before = page.before;
      else this.pages.set(conversationId, { rev: page.rev, before: page.before });
    } else {
      if (current && current.rev > page.rev) return;
      const listed = new Set(page.messages.map((m) => m.id));
      const oldest = page.messages.length ? page.messages[0].seq : null;
      // Older pages merged earlier stay: keep their deeper cursor.
      const holdsOlder =
        current !== undefined &&
        oldest !== null &&
        this.messagesOf(conversationId).some((m) => m.seq !== null && m.seq < oldest);
      this.pages.set(conversationId, {
        rev: page.rev,
        before: holdsOlder ? current.before : page.before,
      });
      for (const m of [...this.messages.values()]) {
        if (m.conversation_id !== conversationId || listed.has(m.id)) continue;
        const inRange = m.seq === null || oldest === null || m.seq >= oldest;
        if (inRange && this.lastRev('m:' + m.id) <= page.rev) {
          this.messages.delete(m.id);
          this.revs.delete('m:' + m.id);
          change.messages.add(conversationId);
        }
      }
    }
    for (const m of page.messages) {
      if (this.put('m:' + m.id, page.rev)) {
        this.messages.set(m.id, m);
        change.messages.add(conversationId);
      }
    }
    this.emit(change);
  }

  /**
   * Applies one `quire://update`; returns false when it was stale or a
   * duplicate. A `message_text` adds a streaming message's new text at its
   * place (`at`, in UTF-16 code units, which a JavaScript string counts).
   */
  applyUpdate({ rev, update }: UpdateEvent): boolean {
    const change = emptyChange();
    switch (update.type) {
      case 'conversation': {
        const { type: _type, ...conversation } = update;
        if (rev <= this.snapshotRev && !this.conversations.has(conversation.id)) return false;
        if (!this.put('c:' + conversation.id, rev)) return false;
        this.conversations.set(conversation.id, conversation);
        change.conversations = true;
        break;
      }
      case 'conversation_removed': {
        if (!this.put('c:' + update.id, rev)) return false;
        this.removeConversation(update.id, rev, change);
        break;
      }
      case 'document': {
        const { type: _type, ...document } = update;
        if (rev <= this.snapshotRev && !this.documents.has(document.id)) return false;
        if (!this.put('d:' + document.id, rev)) return false;
        this.documents.set(document.id, document);
        change.documents = true;
        break;
      }
      case 'document_removed': {
        if (!this.put('d:' + update.id, rev)) return false;
        this.documents.delete(update.id);
        this.tombstones.set('d:' + update.id, rev);
        change.documents = true;
        break;
      }
      case 'message': {
        const m = update.message;
        if (this.lastTombstone('c:' + m.conversation_id) >= rev) return false;
        const page = this.pages.get(m.conversation_id);
        // A page read at or after this rev did not list it: it is outside the
        // loaded window (an older page will bring it).
        if (page && rev <= page.rev && !this.messages.has(m.id)) return false;
        if (!this.put('m:' + m.id, rev)) return false;
        this.messages.set(m.id, m);
        change.messages.add(m.conversation_id);
        break;
      }
      case 'message_text': {
        const { id, conversation_id, at, text } = update;
        const m = this.messages.get(id);
        // Not held here (a page read later has its whole text), or over.
        if (!m || m.status !== 'streaming') return false;
        if (this.lastTombstone('c:' + conversation_id) >= rev || rev <= this.lastRev('m:' + id)) return false;
        if (at > m.content.length) {
          // Text before it never came here: drop the page so it is read again.
          this.pages.delete(conversation_id);
          change.reread.add(conversation_id);
          this.emit(change);
          return false;
        }
        this.revs.set('m:' + id, rev);
        // What the page already held of it (it was read while this was on its way) is not added twice.
        const added = text.slice(m.content.length - at);
        if (!added) return false;
        this.messages.set(id, { ...m, content: m.content + added });
        change.messages.add(conversation_id);
        break;
      }
      default:
        return false;
    }
    this.emit(change);
    return true;
  }

  // ---- internals ----

  private lastRev(key: string): number {
    return this.revs.get(key) ?? NONE;
  }

  private lastTombstone(key: string): number {
    return this.tombstones.get(key) ?? NONE;
  }

  /** Records `rev` for `key` if it is newer than anything applied or removed. */
  private put(key: string, rev: number): boolean {
    if (rev <= this.lastRev(key) || rev <= this.lastTombstone(key)) return false;
    this.revs.set(key, rev);
    return true;
  }

  private removeConversation(id: Uuid, rev: number, change: Change): void {
    this.conversations.delete(id);
    this.tombstones.set('c:' + id, rev);
    this.pages.delete(id);
    for (const m of [...this.messages.values()]) {
      if (m.conversation_id === id) {
        this.messages.delete(m.id);
        this.revs.delete('m:' + m.id);
      }
    }
    change.conversations = true;
    change.messages.add(id);
  }

  private emit(change: Change): void {
    if (!change.conversations && !change.documents && change.messages.size === 0 && change.reread.size === 0) return;
    for (const listener of this.listeners) listener(change);
  }
}

function emptyChange(): Change {
  return { conversations: false, documents: false, messages: new Set(), reread: new Set() };
}

/** RFC 3339 timestamps differ in fractional digits, so compare them as times. */
function time(at: string): number {
  const t = Date.parse(at);
  return Number.isNaN(t) ? 0 : t;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareConversations(a: Conversation, b: Conversation): number {
  const archived = Number(Boolean(a.archived_at)) - Number(Boolean(b.archived_at));
  return archived || time(b.updated_at) - time(a.updated_at) || cmp(a.id, b.id);
}

function compareMessages(a: Message, b: Message): number {
  const sa = a.seq ?? Number.MAX_SAFE_INTEGER;
  const sb = b.seq ?? Number.MAX_SAFE_INTEGER;
  if (sa !== sb) return sa - sb;
  const ra = a.role === 'assistant' ? 1 : 0;
  const rb = b.role === 'assistant' ? 1 : 0;
  return ra - rb || cmp(a.id, b.id);
}
