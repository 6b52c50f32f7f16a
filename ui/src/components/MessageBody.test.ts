import { flushSync, mount, unmount } from 'svelte';
import { afterEach, describe, expect, it } from 'vitest';
import MessageBody from './MessageBody.svelte';

let app: Record<string, unknown> | null = null;

afterEach(() => {
  if (app) unmount(app);
  app = null;
  document.body.innerHTML = '';
});

function answer(content: string, opened: string[] = []): HTMLElement {
  app = mount(MessageBody, {
    target: document.body,
    props: {
      content,
      context: { citations: [], sources: [] },
      streaming: false,
      onCitation: () => {},
      onLink: (url: string) => opened.push(url),
    },
  });
  flushSync();
  return document.querySelector<HTMLElement>('[data-testid="message-body"]')!;
}

const status = () => document.querySelector('[data-testid="link-status"]')?.textContent?.trim() ?? null;

function fire(target: Element, type: string): Event {
  const event = type.startsWith('focus') ? new FocusEvent(type, { bubbles: true, cancelable: true }) : new MouseEvent(type, { bubbles: true, cancelable: true });
  target.dispatchEvent(event);
  flushSync();
  return event;
}

describe('links in an answer', () => {
  it('show where they really go while pointed at or focused, whatever their text says', () => {
    const body = answer('See the [tenant guide](https://example.org/tenants) and [https://bank.example](https://bank.example@evil.example/login?x=1).');
    const [guide, disguised] = body.querySelectorAll('a');
    expect(status()).toBeNull();

    fire(guide, 'mouseover');
    expect(status()).toBe('https://example.org/tenants');
    expect(document.querySelector('[data-testid="link-status"] strong')?.textContent).toBe('https://example.org');

    fire(disguised, 'mouseover');
    expect(status()).toBe('https://evil.example/login?x=1');

    fire(body, 'mouseleave');
    expect(status()).toBeNull();

    fire(disguised, 'focusin');
    expect(status()).toBe('https://evil.example/login?x=1');
    fire(disguised, 'focusout');
    expect(status()).toBeNull();
  });

  it('go to the shell when clicked, and the web view does not navigate', () => {
    const opened: string[] = [];
    const body = answer('Write to [the landlord](mailto:landlord@example.org) or read [this](https://example.org/a).', opened);
    const [mail, web] = body.querySelectorAll('a');

    fire(mail, 'mouseover');
    expect(status()).toBe('mailto:landlord@example.org');
    expect(fire(web, 'click').defaultPrevented).toBe(true);
    expect(fire(mail, 'click').defaultPrevented).toBe(true);
    expect(opened).toEqual(['https://example.org/a', 'mailto:landlord@example.org']);
  });

  it('a link the sanitiser dropped shows no destination and opens nothing', () => {
    const opened: string[] = [];
    const body = answer('[run me](javascript:alert(1))', opened);
    const link = body.querySelector('a')!;
    fire(link, 'mouseover');
    expect(status()).toBeNull();
    fire(link, 'click');
    expect(opened).toEqual([]);
  });
});
