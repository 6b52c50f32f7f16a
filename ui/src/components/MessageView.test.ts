import { flushSync, mount, unmount } from 'svelte';
import { afterEach, describe, expect, it } from 'vitest';
import MessageView from './MessageView.svelte';
import type { CitationTarget } from '../lib/markdown';
import type { Message } from '../lib/types';

let app: Record<string, unknown> | null = null;

afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = '';
});

function answer(extra: Partial<Message> = {}): Message {
  return {
    id: 'a2',
    conversation_id: 'c',
    seq: 3,
    role: 'assistant',
    status: 'complete',
    content: 'The deposit is two months of rent.',
    citations: [],
    sources: [],
    question_id: 'q',
    error: null,
    tools: [],
    ...extra,
  };
}

function show(message: Message, more: Record<string, unknown> = {}) {
  app = mount(MessageView, {
    target: document.body,
    props: {
      message,
      hits: undefined,
      seenStreaming: false,
      canRegenerate: true,
      documentTitle: () => 'Document',
      onOpenSource: () => {},
      onLink: () => {},
      onRegenerate: () => {},
      ...more,
    },
  });
  flushSync();
}

const q = (id: string) => document.querySelector<HTMLElement>(`[data-testid="${id}"]`);

describe('an answer', () => {
  it('with versions shows ‹ 2/2 › and picks another with the arrows', () => {
    const picks: number[] = [];
    show(answer(), { versions: { index: 1, count: 2, onPick: (i: number) => picks.push(i) } });
    expect(q('version-label')?.textContent).toBe('2/2');
    expect((q('next-version') as HTMLButtonElement).disabled).toBe(true);
    q('previous-version')!.click();
    expect(picks).toEqual([0]);
  });

  it('with one version shows no arrows', () => {
    show(answer());
    expect(q('versions')).toBeNull();
  });

  it('reopened after a Stop, shows the sources it was given and opens their page', () => {
    const opened: CitationTarget[] = [];
    show(
      answer({
        status: 'stopped',
        content: 'The deposit',
        sources: [{ id: 'k', document_id: 'd', chunk_id: 'x', page: 3, page_end: 3, title: 'Lease' }],
      }),
      { onOpenSource: (t: CitationTarget) => opened.push(t) },
    );
    const chips = document.querySelectorAll<HTMLButtonElement>('[data-testid="source-chip"]');
    expect(chips).toHaveLength(1);
    expect(q('no-sources')).toBeNull();
    chips[0].click();
    expect(opened.map((t) => [t.documentId, t.page])).toEqual([['d', 3]]);
  });
});
