import { describe, expect, it } from 'vitest';
import { createFakeBackend } from './fake-backend';
import { QuireStore } from './store';
import { documentStatusText } from './words';
import type { Document, UpdateEvent } from './types';

const until = async (check: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('the store over the fake backend', () => {
  it('snapshot + a streamed answer with shuffled, duplicated deliveries ends as the same text', async () => {
    const backend = createFakeBackend({ signedIn: true, tokenMs: 1 });
    const inOrder = new QuireStore();
    const shuffled = new QuireStore();
    const events: UpdateEvent[] = [];
    await backend.onUpdate((e) => {
      events.push(e);
      inOrder.applyUpdate(e);
    });
    const snapshot = await backend.snapshot();
    inOrder.applySnapshot(snapshot);
    shuffled.applySnapshot(snapshot);
    const hits = await backend.retrieve('notice period');
    const { conversation_id, message_id } = await backend.ask(null, 'notice period?', hits);
    await until(() => inOrder.message(message_id)?.status === 'complete');

    // Deliver the same events to a second store out of order, each twice.
    const copy = [...events, ...events];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [copy[i], copy[j]] = [copy[j], copy[i]];
    }
    copy.forEach((e) => shuffled.applyUpdate(e));

    const final = inOrder.message(message_id)!;
    expect(final.content).toContain('sixty days');
    expect(final.citations.length).toBeGreaterThan(0);
    expect(shuffled.message(message_id)).toEqual(final);
    expect(shuffled.messagesOf(conversation_id).map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(shuffled.conversationList()[0].id).toBe(conversation_id);
  });
});

describe('document status words', () => {
  const doc = (status: Document['status'], extra: Partial<Document> = {}): Document => ({
    id: 'd',
    title: 't',
    status,
    error: null,
    page_count: null,
    byte_size: null,
    updated_at: '2026-01-01T00:00:00Z',
    upload: null,
    uploading: null,
    ...extra,
  });
  it('say what is happening, for people', () => {
    expect(documentStatusText(doc('uploading', { upload: { sent: 42, total: 100 } }))).toBe('Uploading 42%');
    expect(documentStatusText(doc('extracting'))).toBe('Extracting text…');
    expect(documentStatusText(doc('indexing'))).toBe('Indexing…');
    expect(documentStatusText(doc('ready'))).toBe('Ready');
    expect(documentStatusText(doc('no_text'))).toBe('No text layer — stored but not searchable');
    expect(documentStatusText(doc('failed', { error: 'the file is damaged' }))).toBe('Failed: the file is damaged');
  });
});
