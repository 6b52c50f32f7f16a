import { describe, expect, it, vi } from 'vitest';
import { QuireStore } from './store';
import type { Conversation, Document, Message, UpdateEvent } from './types';

const C = '00000000-0000-4000-8000-0000000000c1';
const C2 = '00000000-0000-4000-8000-0000000000c2';
const D = '00000000-0000-4000-8000-0000000000d1';

function conversation(id: string, updated: string, title: string | null = 'T'): Conversation {
  return { id, title, created_at: '2026-01-01T00:00:00Z', updated_at: updated, archived_at: null, document_ids: [] };
}

function document(status: Document['status'], extra: Partial<Document> = {}): Document {
  return { id: D, title: 'Lease.pdf', status, error: null, page_count: 3, byte_size: 10, updated_at: '2026-01-01T00:00:00Z', upload: null, uploading: null, ...extra };
}

function message(id: string, seq: number | null, content: string, extra: Partial<Message> = {}): Message {
  return {
    id,
    conversation_id: C,
    seq,
    role: 'assistant',
    status: 'streaming',
    content,
    citations: [],
    sources: [],
    question_id: null,
    error: null,
    tools: [],
    ...extra,
  };
}

const msgUpdate = (rev: number, m: Message, appended: string | null = null): UpdateEvent => ({
  rev,
  update: { type: 'message', message: m, appended },
});

describe('stream reconciliation', () => {
  it('applies a page (backfill) then live updates, ignoring what the page already had', () => {
    const store = new QuireStore();
    store.applyPage(C, { rev: 10, messages: [message('q', 0, 'Why?', { role: 'user', status: 'complete' }), message('a', 1, 'Hel')], before: null });
    // Updates at or below the page's rev are already in it.
    expect(store.applyUpdate(msgUpdate(9, message('a', 1, 'He')))).toBe(false);
    expect(store.applyUpdate(msgUpdate(10, message('a', 1, 'Hel')))).toBe(false);
    expect(store.applyUpdate(msgUpdate(11, message('a', 1, 'Hello'), 'lo'))).toBe(true);
    expect(store.applyUpdate(msgUpdate(12, message('a', 1, 'Hello, world', { status: 'complete' }), ', world'))).toBe(true);
    const list = store.messagesOf(C);
    expect(list.map((m) => m.id)).toEqual(['q', 'a']);
    expect(list[1].content).toBe('Hello, world');
    expect(list[1].status).toBe('complete');
  });

  it('ignores duplicates and out-of-order (older) updates of a message', () => {
    const store = new QuireStore();
    expect(store.applyUpdate(msgUpdate(3, message('a', null, 'abc')))).toBe(true);
    expect(store.applyUpdate(msgUpdate(3, message('a', null, 'abc')))).toBe(false);
    expect(store.applyUpdate(msgUpdate(2, message('a', null, 'ab')))).toBe(false);
    expect(store.applyUpdate(msgUpdate(5, message('a', 1, 'abcde')))).toBe(true);
    expect(store.applyUpdate(msgUpdate(4, message('a', 1, 'abcd')))).toBe(false);
    expect(store.message('a')?.content).toBe('abcde');
  });

  it('keeps live updates that arrived while the page was being read', () => {
    const store = new QuireStore();
    // The update (rev 8) lands before the page read at rev 7 returns.
    store.applyUpdate(msgUpdate(8, message('a', 1, 'newer text')));
    store.applyPage(C, { rev: 7, messages: [message('a', 1, 'older')], before: null });
    expect(store.message('a')?.content).toBe('newer text');
  });

  it('follows an answer still streaming on another device: history page, then its next deltas', () => {
    const store = new QuireStore();
    store.applyPage(C, { rev: 20, messages: [message('a', 1, 'The first half')], before: null });
    store.applyUpdate(msgUpdate(21, message('a', 1, 'The first half and'), ' and'));
    store.applyUpdate(msgUpdate(22, message('a', 1, 'The first half and the rest.', { status: 'complete' })));
    expect(store.message('a')).toMatchObject({ content: 'The first half and the rest.', status: 'complete' });
  });

  it('a message update older than the open page and not in it is outside the window', () => {
    const store = new QuireStore();
    store.applyPage(C, { rev: 30, messages: [message('new', 50, 'x')], before: 50 });
    expect(store.applyUpdate(msgUpdate(29, message('old', 3, 'y')))).toBe(false);
    expect(store.applyUpdate(msgUpdate(31, message('fresh', 51, 'z')))).toBe(true);
    expect(store.messagesOf(C).map((m) => m.id)).toEqual(['new', 'fresh']);
  });

  it('orders messages by seq, a question before its answer, unknown seq last', () => {
    const store = new QuireStore();
    store.applyUpdate(msgUpdate(1, message('streaming', null, '')));
    store.applyUpdate(msgUpdate(2, message('a1', 1, 'A', { role: 'assistant' })));
    store.applyUpdate(msgUpdate(3, message('q1', 1, 'Q', { role: 'user' })));
    store.applyUpdate(msgUpdate(4, message('q0', 0, 'Q0', { role: 'user' })));
    expect(store.messagesOf(C).map((m) => m.id)).toEqual(['q0', 'q1', 'a1', 'streaming']);
  });

  it('merges older history pages in front and moves the cursor', () => {
    const store = new QuireStore();
    const page = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => message(`m${from + i}`, from + i, `#${from + i}`, { status: 'complete' }));
    store.applyPage(C, { rev: 5, messages: page(100, 150), before: 100 });
    expect(store.olderCursor(C)).toBe(100);
    store.applyPage(C, { rev: 6, messages: page(50, 100), before: 50 }, true);
    expect(store.olderCursor(C)).toBe(50);
    store.applyPage(C, { rev: 7, messages: page(0, 50), before: null }, true);
    expect(store.olderCursor(C)).toBeNull();
    const ids = store.messagesOf(C).map((m) => m.seq);
    expect(ids).toEqual(Array.from({ length: 150 }, (_, i) => i));
    // Re-reading the latest page (resync) keeps the older pages and their cursor.
    store.applyPage(C, { rev: 9, messages: page(100, 150), before: 100 });
    expect(store.messagesOf(C)).toHaveLength(150);
    expect(store.olderCursor(C)).toBeNull();
  });

  it('drops messages a re-read latest page no longer lists in its range', () => {
    const store = new QuireStore();
    store.applyPage(C, { rev: 1, messages: [message('a', 0, 'x')], before: null });
    store.applyUpdate(msgUpdate(2, message('ghost', null, '')));
    store.applyPage(C, { rev: 3, messages: [message('a', 0, 'x'), message('b', 1, 'y')], before: null });
    expect(store.messagesOf(C).map((m) => m.id)).toEqual(['a', 'b']);
  });
});

const textUpdate = (rev: number, id: string, at: number, text: string): UpdateEvent => ({
  rev,
  update: { type: 'message_text', id, conversation_id: C, at, text },
});

describe('streamed text (message_text: only the new text, at its place)', () => {
  it('appends each piece once, at its place, whatever the page already had', () => {
    const store = new QuireStore();
    store.applyPage(C, { rev: 10, messages: [message('a', 1, 'Hel')], before: null });
    expect(store.applyUpdate(textUpdate(11, 'a', 3, 'lo'))).toBe(true);
    expect(store.message('a')!.content).toBe('Hello');
    // A duplicate, and a piece already in what is held.
    expect(store.applyUpdate(textUpdate(11, 'a', 3, 'lo'))).toBe(false);
    expect(store.applyUpdate(textUpdate(12, 'a', 0, 'Hello'))).toBe(false);
    // A piece that starts inside what is held (the page was read while it was on its way).
    expect(store.applyUpdate(textUpdate(13, 'a', 4, 'o, 😀'))).toBe(true);
    expect(store.applyUpdate(textUpdate(14, 'a', 9, ' world'))).toBe(true);
    expect(store.message('a')!.content).toBe('Hello, 😀 world');
    // The final update carries the whole text, and wins.
    expect(store.applyUpdate(msgUpdate(15, message('a', 1, 'Hello, 😀 world.', { status: 'complete' }), '.'))).toBe(true);
    expect(store.applyUpdate(textUpdate(16, 'a', 16, ' late'))).toBe(false);
    expect(store.message('a')!).toMatchObject({ content: 'Hello, 😀 world.', status: 'complete' });
  });

  it('a message grown by text is a new object, so views that compare by identity redraw it', () => {
    const store = new QuireStore();
    store.applyPage(C, { rev: 1, messages: [message('a', 1, 'a')], before: null });
    const before = store.message('a');
    store.applyUpdate(textUpdate(2, 'a', 1, 'b'));
    expect(store.message('a')).not.toBe(before);
    expect(before!.content).toBe('a');
  });

  it('text after a missing piece is not applied: the conversation is read again', () => {
    const store = new QuireStore();
    const changes: Array<Set<string>> = [];
    store.subscribe((change) => changes.push(change.reread));
    store.applyPage(C, { rev: 10, messages: [message('a', 1, 'Hel')], before: null });
    expect(store.applyUpdate(textUpdate(12, 'a', 5, ', world'))).toBe(false);
    expect(store.message('a')!.content).toBe('Hel');
    expect(changes.at(-1)).toEqual(new Set([C]));
    expect(store.isOpened(C)).toBe(false);
    // The page read again has the whole text, and later text follows it.
    store.applyPage(C, { rev: 13, messages: [message('a', 1, 'Hello, world')], before: null });
    expect(store.applyUpdate(textUpdate(14, 'a', 12, '!'))).toBe(true);
    expect(store.message('a')!.content).toBe('Hello, world!');
  });

  it('text of a message not held here, or of a deleted conversation, is ignored', () => {
    const store = new QuireStore();
    expect(store.applyUpdate(textUpdate(1, 'a', 0, 'Hi'))).toBe(false);
    expect(store.message('a')).toBeUndefined();
    store.applyUpdate(msgUpdate(2, message('b', 1, 'x')));
    store.applyUpdate({ rev: 3, update: { type: 'conversation_removed', id: C } });
    expect(store.applyUpdate(textUpdate(4, 'b', 1, 'y'))).toBe(false);
    expect(store.message('b')).toBeUndefined();
  });
});

describe('conversations and documents', () => {
  it('orders conversations newest first, archived last, whatever the timestamp precision', () => {
    const store = new QuireStore();
    store.applySnapshot({
      rev: 1,
      conversations: [
        conversation('a', '2026-01-01T10:00:00.1Z'),
        conversation('b', '2026-01-01T10:00:00.123Z'),
        { ...conversation('c', '2026-02-01T00:00:00Z'), archived_at: '2026-02-02T00:00:00Z' },
        conversation('d', '2025-12-31T00:00:00Z'),
      ],
      documents: [],
    });
    expect(store.conversationList().map((c) => c.id)).toEqual(['b', 'a', 'd', 'c']);
    store.applyUpdate({ rev: 2, update: { type: 'conversation', ...conversation('d', '2026-03-01T00:00:00Z') } });
    expect(store.conversationList()[0].id).toBe('d');
  });

  it('a removal is a tombstone: late updates cannot bring the entity back', () => {
    const store = new QuireStore();
    store.applySnapshot({ rev: 1, conversations: [conversation(C, '2026-01-01T00:00:00Z')], documents: [document('ready')] });
    store.applyPage(C, { rev: 1, messages: [message('a', 0, 'x')], before: null });
    expect(store.applyUpdate({ rev: 5, update: { type: 'conversation_removed', id: C } })).toBe(true);
    expect(store.messagesOf(C)).toEqual([]);
    expect(store.applyUpdate({ rev: 4, update: { type: 'conversation', ...conversation(C, '2026-01-02T00:00:00Z') } })).toBe(false);
    expect(store.applyUpdate(msgUpdate(5, message('a', 0, 'late')))).toBe(false);
    expect(store.conversationList()).toEqual([]);

    store.applyUpdate({ rev: 6, update: { type: 'document_removed', id: D } });
    expect(store.applyUpdate({ rev: 6, update: { type: 'document', ...document('indexing') } })).toBe(false);
    expect(store.documentList()).toEqual([]);
  });

  it('document updates replace by rev, not by arrival', () => {
    const store = new QuireStore();
    store.applySnapshot({ rev: 1, conversations: [], documents: [document('uploading', { upload: { sent: 1, total: 10 } })] });
    store.applyUpdate({ rev: 3, update: { type: 'document', ...document('indexing') } });
    store.applyUpdate({ rev: 2, update: { type: 'document', ...document('extracting') } });
    expect(store.document(D)?.status).toBe('indexing');
    store.applyUpdate({ rev: 4, update: { type: 'document', ...document('ready') } });
    expect(store.document(D)?.status).toBe('ready');
  });

  it('resync: a newer snapshot drops what it no longer lists but keeps newer live news', () => {
    const store = new QuireStore();
    store.applySnapshot({ rev: 1, conversations: [conversation('gone', '2026-01-01T00:00:00Z'), conversation('kept', '2026-01-01T00:00:00Z')], documents: [] });
    // Arrives while the resync snapshot (read at rev 10) is in flight.
    store.applyUpdate({ rev: 11, update: { type: 'conversation', ...conversation('brand-new', '2026-01-05T00:00:00Z') } });
    store.applySnapshot({ rev: 10, conversations: [conversation('kept', '2026-01-02T00:00:00Z', 'Renamed')], documents: [document('ready')] });
    expect(store.conversationList().map((c) => c.id).sort()).toEqual(['brand-new', 'kept']);
    expect(store.conversation('kept')?.title).toBe('Renamed');
    expect(store.documentList()).toHaveLength(1);
    // Updates the snapshot already covered change nothing.
    expect(store.applyUpdate({ rev: 9, update: { type: 'conversation', ...conversation('gone', '2026-01-03T00:00:00Z') } })).toBe(false);
    expect(store.applyUpdate({ rev: 10, update: { type: 'document', ...document('failed') } })).toBe(false);
    // An older snapshot arriving late is ignored.
    store.applySnapshot({ rev: 2, conversations: [], documents: [] });
    expect(store.conversationList()).toHaveLength(2);
  });

  it('notifies listeners with what changed, and not for ignored updates', () => {
    const store = new QuireStore();
    const listener = vi.fn();
    store.subscribe(listener);
    store.applyUpdate(msgUpdate(1, message('a', 0, 'x')));
    store.applyUpdate(msgUpdate(1, message('a', 0, 'x')));
    expect(listener).toHaveBeenCalledTimes(1);
    expect(listener.mock.calls[0][0].messages.has(C)).toBe(true);
    store.applyUpdate({ rev: 2, update: { type: 'conversation', ...conversation(C2, '2026-01-01T00:00:00Z') } });
    expect(listener.mock.calls[1][0]).toMatchObject({ conversations: true, documents: false });
  });
});

describe('removal', () => {
  it('wasRemoved tells a deleted conversation from one not loaded yet', () => {
    const store = new QuireStore();
    expect(store.wasRemoved(C)).toBe(false);
    store.applyUpdate({ rev: 1, update: { type: 'conversation', ...conversation(C, '2026-01-01T00:00:00Z') } });
    store.applyUpdate({ rev: 2, update: { type: 'conversation_removed', id: C } });
    expect(store.wasRemoved(C)).toBe(true);
  });
});
