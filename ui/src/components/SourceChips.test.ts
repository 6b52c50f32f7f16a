import { flushSync, mount, unmount } from 'svelte';
import { afterEach, describe, expect, it } from 'vitest';
import SourceChips from './SourceChips.svelte';
import type { ContextChunk } from '../lib/types';

let app: Record<string, unknown> | null = null;

afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = '';
});

function chips(sources: ContextChunk[], opened: [ContextChunk, number][] = []): HTMLButtonElement[] {
  app = mount(SourceChips, {
    target: document.body,
    props: { sources, onOpen: (s: ContextChunk, i: number) => opened.push([s, i]) },
  });
  flushSync();
  return [...document.querySelectorAll<HTMLButtonElement>('[data-testid="source-chip"]')];
}

describe('source chips', () => {
  it('name one page "p. 3", a range "pp. 3–4", and no page when none is known', () => {
    const found = chips([
      { id: 'a', document_id: 'doc-a', chunk_id: null, page: 2, page_end: 2, title: 'Lease.pdf' },
      { id: 'b', document_id: 'doc-b', chunk_id: null, page: 3, page_end: 4, title: 'Manual.pdf' },
      { id: 'c', document_id: 'doc-c', chunk_id: null, page: null, page_end: null, title: 'Notes.pdf' },
      { id: 'd', document_id: 'doc-d', chunk_id: null, page: 7, title: 'Old answer.pdf' },
    ]);

    expect(found.map((b) => b.querySelector('.chip-page')?.textContent ?? null)).toEqual(['p. 2', 'pp. 3–4', null, 'p. 7']);
    expect(found.map((b) => [b.dataset.page, b.dataset.pageEnd])).toEqual([
      ['2', undefined],
      ['3', '4'],
      [undefined, undefined],
      ['7', undefined],
    ]);
    expect(found[1].getAttribute('aria-label')).toBe('Open source 2: Manual.pdf, pages 3 to 4');
    expect(found[2].getAttribute('aria-label')).toBe('Open source 3: Notes.pdf');
  });

  it('two chunks of one document on different ranges are two chips', () => {
    const found = chips([
      { id: 'a', document_id: 'doc', chunk_id: null, page: 3, page_end: 3, title: 'Manual.pdf' },
      { id: 'b', document_id: 'doc', chunk_id: null, page: 3, page_end: 4, title: 'Manual.pdf' },
    ]);
    expect(found).toHaveLength(2);
  });

  it('two passages of one page are one chip with both of their markers, so [2] has a chip too', () => {
    const opened: [ContextChunk, number][] = [];
    const found = chips(
      [
        { id: 'a', document_id: 'doc', chunk_id: 'c1', page: 2, page_end: 2, title: 'Harbour diary.pdf' },
        { id: 'b', document_id: 'doc', chunk_id: 'c2', page: 2, page_end: 2, title: 'Harbour diary.pdf' },
      ],
      opened,
    );
    expect(found).toHaveLength(1);
    expect(found[0].querySelector('.chip-n')?.textContent).toBe('1, 2');
    expect(found[0].getAttribute('aria-label')).toBe('Open sources 1 and 2: Harbour diary.pdf, page 2');
    found[0].click();
    expect(opened.map(([s, i]) => [s.id, i])).toEqual([['a', 0]]);
  });
});
