import { flushSync, mount, unmount } from 'svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { renderMarkdownToString } from '../lib/markdown';
import MessageBody from './MessageBody.svelte';

let app: Record<string, unknown> | null = null;
const frames: FrameRequestCallback[] = [];

afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = '';
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

const nextFrame = () => {
  frames.splice(0).forEach((cb) => cb(performance.now()));
  flushSync();
};

describe('a streamed answer', () => {
  it('shows its last words when it ends, and the whole text rendered as one a frame later', () => {
    vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => frames.push(cb));
    vi.stubGlobal('cancelAnimationFrame', () => {});
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const props = $state({
      content: 'Parts:\n\n- the jars',
      context: { citations: [], sources: [] },
      streaming: true,
      onCitation: () => {},
      onLink: () => {},
    });
    app = mount(MessageBody, { target: document.body, props });
    flushSync();
    nextFrame();
    const body = document.querySelector<HTMLElement>('[data-testid="message-body"]')!;
    expect(body.textContent).toContain('the jars');

    // A blank line then another item: as a whole, one loose list.
    const final = 'Parts:\n\n- the jars\n\n- the motor';
    props.content = final;
    props.streaming = false;
    flushSync();
    expect(body.textContent).toContain('the motor');
    expect(body.querySelectorAll('ul')).toHaveLength(2);

    nextFrame();
    expect(body.querySelectorAll('ul')).toHaveLength(1);
    expect(body.innerHTML).toBe(renderMarkdownToString(final));
  });
});
