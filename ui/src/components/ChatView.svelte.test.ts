import { flushSync, mount, unmount } from 'svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createFakeBackend } from '../lib/fake-backend';
import type { ChunkHit, Document } from '../lib/types';
import ChatView from './ChatView.svelte';

let app: Record<string, unknown> | null = null;

afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = '';
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

const glacier: Document = {
  id: '00000000-0000-4000-8000-000000000001',
  title: 'Glacier survey',
  status: 'ready',
  error: null,
  page_count: 2,
  byte_size: 1500,
  updated_at: '2026-12-07T00:00:00Z',
  upload: null,
  uploading: null,
};

function chatView() {
  // jsdom has no layout: the view's scroll-follower observes nothing.
  vi.stubGlobal(
    'ResizeObserver',
    class {
      observe() {}
      disconnect() {}
    },
  );
  const backend = createFakeBackend({ signedIn: true });
  const ask = vi.spyOn(backend, 'ask');
  app = mount(ChatView, {
    target: document.body,
    props: {
      backend,
      conversationId: null,
      scope: [],
      messages: [],
      documents: [glacier],
      hasOlder: false,
      loading: false,
      error: null,
      localHits: new Map<string, ChunkHit[]>(),
      seenStreaming: new Set<string>(),
      onAsked: () => {},
      onOpenSource: () => {},
      onLoadOlder: async () => {},
      onUpload: () => {},
      onError: () => {},
    },
  });
  flushSync();
  const composer = document.querySelector<HTMLTextAreaElement>('[data-testid="composer"]')!;
  return { ask, composer };
}

const suggested = () => [...document.querySelectorAll('[data-testid="scope-suggestion"]')].map((s) => s.textContent?.trim());
const chips = () => [...document.querySelectorAll('[data-testid="scope-chip"]')].map((c) => c.getAttribute('data-id'));

function type(composer: HTMLTextAreaElement, text: string) {
  composer.focus();
  composer.value = text;
  composer.setSelectionRange(text.length, text.length);
  composer.dispatchEvent(new Event('input', { bubbles: true }));
  flushSync();
}

function enter(composer: HTMLTextAreaElement) {
  composer.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
  flushSync();
}

describe('a document chosen by typing #', () => {
  it('stays offered while the window is away, and Enter then takes it instead of sending', () => {
    const { ask, composer } = chatView();
    type(composer, '#glacier sur');
    expect(suggested()).toEqual(['Glacier survey']);

    // Another window takes the focus; the keys that come next reach the composer with no
    // focus event (as WebDriver's do, or a window manager's that gives the focus back
    // without one).
    vi.spyOn(document, 'hasFocus').mockReturnValue(false);
    composer.blur();
    flushSync();
    expect(suggested()).toEqual(['Glacier survey']);

    enter(composer);
    expect(chips()).toEqual([glacier.id]);
    expect(composer.value).toBe('');
    expect(ask).not.toHaveBeenCalled();
  });

  it('closes when the focus goes elsewhere in the window, and is offered again when it comes back', () => {
    const { ask, composer } = chatView();
    type(composer, '#glacier sur');
    vi.spyOn(document, 'hasFocus').mockReturnValue(true);
    composer.blur();
    flushSync();
    expect(suggested()).toEqual([]);

    composer.focus();
    flushSync();
    expect(suggested()).toEqual(['Glacier survey']);
    enter(composer);
    expect(chips()).toEqual([glacier.id]);
    expect(ask).not.toHaveBeenCalled();
  });
});
