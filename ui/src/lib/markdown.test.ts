import { describe, expect, it } from 'vitest';
import { linkDestination, renderMarkdown, renderMarkdownToString, resolveCitation, sanitize, stableEnd, StreamingMarkdown } from './markdown';

const html = (markdown: string) => renderMarkdownToString(markdown);

function host(markdown: string, context?: Parameters<typeof renderMarkdown>[1]): HTMLDivElement {
  const div = document.createElement('div');
  div.append(renderMarkdown(markdown, context));
  return div;
}

describe('Markdown sanitiser against XSS', () => {
  const payloads = [
    '<script>alert(1)</script>',
    '<SCRIPT SRC=//evil.example/xss.js></SCRIPT>',
    '<img src=x onerror=alert(1)>',
    '<svg onload=alert(1)><circle r=1 /></svg>',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href=" javascript:alert(1)">click</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<div onclick="alert(1)" onmouseover="alert(2)">hover</div>',
    '<p style="background:url(javascript:alert(1))">styled</p>',
    '<style>body{display:none}</style>',
    '<form action="https://evil.example"><input name=x><button>go</button></form>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<details open ontoggle=alert(1)>x</details>',
    '<button data-testid="citation" data-document-id="victim">1</button>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '[click](javascript:alert(1))',
    '[click](  javascript:alert(1) )',
    '[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
    '![x](javascript:alert(1))',
    '<img src="https://tracker.example/pixel.gif">',
    '![beacon](https://tracker.example/pixel.png)',
    '<img srcset="https://tracker.example/a.png 1x">',
    '<video poster="https://tracker.example/p.png"></video>',
    '<a href="https://ok.example" onclick="alert(1)">ok</a>',
  ];

  it.each(payloads)('neutralises %s', (payload) => {
    const out = host(payload);
    expect(out.querySelector('script, style, iframe, object, embed, form, meta, base, link, video, svg, math')).toBeNull();
    for (const el of out.querySelectorAll('*')) {
      for (const attr of el.getAttributeNames()) {
        expect(attr.startsWith('on'), `${attr} on <${el.tagName}>`).toBe(false);
        expect(attr).not.toBe('style');
        expect(attr).not.toBe('srcset');
      }
      const href = el.getAttribute('href');
      if (href !== null) expect(href).toMatch(/^(https?:|mailto:)/i);
      const src = el.getAttribute('src');
      if (src !== null) expect(src).toMatch(/^data:image\//);
    }
    // Nothing the agent writes can pose as a citation.
    expect(out.querySelector('[data-testid]')).toBeNull();
    expect(out.innerHTML.toLowerCase()).not.toContain('javascript:');
  });

  it('drops remote images but keeps their alt text, and keeps data: images', () => {
    const out = host('![Floor plan](https://cdn.example/plan.png) and ![dot](data:image/png;base64,iVBORw0KGgo=)');
    const imgs = out.querySelectorAll('img');
    expect(imgs).toHaveLength(1);
    expect(imgs[0].getAttribute('src')).toBe('data:image/png;base64,iVBORw0KGgo=');
    expect(out.textContent).toContain('[image: Floor plan]');
  });

  it('keeps safe links with their href (clicks go to open_link)', () => {
    const a = host('[guide](https://example.org/a?b=1) <mailto:ada@example.org>').querySelectorAll('a');
    expect(a[0].getAttribute('href')).toBe('https://example.org/a?b=1');
    expect(a[0].getAttribute('rel')).toContain('noreferrer');
    expect(a[1].getAttribute('href')).toBe('mailto:ada@example.org');
  });

  it('sanitize() alone strips handlers from raw HTML', () => {
    const div = document.createElement('div');
    div.append(sanitize('<b onmouseover="x()">bold</b><script>x()</script>'));
    expect(div.innerHTML).toBe('<b>bold</b>');
  });

  it('renders ordinary Markdown', () => {
    expect(html('**bold** and `code`\n\n- a\n- b')).toBe('<p><strong>bold</strong> and <code>code</code></p>\n<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n');
  });
});

describe('citations', () => {
  const context = {
    citations: [{ key: '2', chunk_id: null, document_id: 'doc-b', page: 7, title: 'B.pdf', excerpt: 'the passage' }],
    sources: [
      { id: 's1', document_id: 'doc-a', chunk_id: null, page: 3, title: 'A.pdf' },
      { id: 's2', document_id: 'doc-x', chunk_id: null, page: 1, title: 'X.pdf' },
    ],
  };

  it('turns [n] into buttons: by citation key first, else the n-th source', () => {
    const out = host('First [1], second [2]. Unknown [9].', context);
    const buttons = [...out.querySelectorAll<HTMLButtonElement>('button[data-testid="citation"]')];
    expect(buttons.map((b) => [b.dataset.n, b.dataset.documentId, b.dataset.page])).toEqual([
      ['1', 'doc-a', '3'],
      ['2', 'doc-b', '7'],
    ]);
    expect(out.textContent).toContain('[9]');
    expect(buttons[1].getAttribute('aria-label')).toBe('Source 2: B.pdf, page 7');
  });

  it('leaves markers inside code alone', () => {
    const out = host('`arr[1]`\n\n```\nx[2]\n```', context);
    expect(out.querySelector('button')).toBeNull();
  });

  it('resolveCitation carries the excerpt for finding the passage', () => {
    expect(resolveCitation(2, context)).toMatchObject({ documentId: 'doc-b', page: 7, excerpt: 'the passage' });
    expect(resolveCitation(3, context)).toBeNull();
  });
});

describe('citations of a passage across a page break', () => {
  const context = {
    citations: [
      { key: '1', chunk_id: null, document_id: 'doc-a', page: 3, page_end: 4, title: 'Manual.pdf', excerpt: 'the passage' },
      { key: '2', chunk_id: null, document_id: 'doc-b', page: null, page_end: null, title: 'Notes.pdf', excerpt: null },
    ],
    sources: [
      { id: 's1', document_id: 'doc-a', chunk_id: null, page: 3, page_end: 4, title: 'Manual.pdf' },
      { id: 's2', document_id: 'doc-b', chunk_id: null, page: null, page_end: null, title: 'Notes.pdf' },
      { id: 's3', document_id: 'doc-c', chunk_id: null, page: 5, page_end: 6, title: 'C.pdf' },
    ],
  };

  it('name both pages and point at the first', () => {
    const out = host('Across [1], nowhere [2], a source [3].', context);
    const buttons = [...out.querySelectorAll<HTMLButtonElement>('button[data-testid="citation"]')];
    expect(buttons.map((b) => [b.dataset.n, b.dataset.page, b.dataset.pageEnd])).toEqual([
      ['1', '3', '4'],
      ['2', undefined, undefined],
      ['3', '5', '6'],
    ]);
    expect(buttons[0].getAttribute('aria-label')).toBe('Source 1: Manual.pdf, pages 3 to 4');
    expect(buttons[1].getAttribute('aria-label')).toBe('Source 2: Notes.pdf');
  });

  it('resolveCitation carries the range', () => {
    expect(resolveCitation(1, context)).toMatchObject({ documentId: 'doc-a', page: 3, pageEnd: 4 });
    expect(resolveCitation(2, context)).toMatchObject({ documentId: 'doc-b', page: null, pageEnd: null });
    expect(resolveCitation(3, context)).toMatchObject({ documentId: 'doc-c', page: 5, pageEnd: 6 });
  });

  it('one page has no data-page-end', () => {
    const out = host('One [1].', { citations: [{ key: '1', chunk_id: null, document_id: 'd', page: 7, page_end: 7, title: 'B.pdf', excerpt: null }], sources: [] });
    const button = out.querySelector<HTMLButtonElement>('button[data-testid="citation"]')!;
    expect([button.dataset.page, button.dataset.pageEnd]).toEqual(['7', undefined]);
    expect(button.getAttribute('aria-label')).toBe('Source 1: B.pdf, page 7');
  });
});

describe('streaming render', () => {
  it('stableEnd stops at the last blank line outside code fences', () => {
    expect(stableEnd('one\n\ntwo')).toBe(5);
    expect(stableEnd('one\n\ntwo\n\n')).toBe(10);
    expect(stableEnd('no blank line yet')).toBe(0);
    expect(stableEnd('a\n\n```\ncode\n\nmore code')).toBe(3);
    expect(stableEnd('a\n\n```\ncode\n\n```\n\nafter')).toBe(18);
  });

  it('stableEnd from an earlier settled end finds what a search from the start finds', () => {
    const text = 'a\n\n```\ncode\n\nmore\n```\n\nb\n\n~~~\nx\n\n~~~\n\nend';
    for (let i = 0; i <= text.length; i++) {
      const prefix = text.slice(0, i);
      for (let j = i; j <= text.length; j++) {
        const longer = text.slice(0, j);
        expect(stableEnd(longer, stableEnd(prefix)), JSON.stringify([prefix, longer])).toBe(stableEnd(longer));
      }
    }
  });

  it('renders a growing text block by block and ends exactly as a full render', () => {
    const text = 'Intro with a citation [1].\n\n- item one\n- item two\n\n```\nx = [2]\n\ny\n```\n\nThe **end** [2].';
    const context = { citations: [], sources: [{ id: 's', document_id: 'd', chunk_id: null, page: 1, title: 'T' }, { id: 't', document_id: 'e', chunk_id: null, page: 2, title: 'U' }] };
    const host = document.createElement('div');
    const renderer = new StreamingMarkdown(host);
    let firstBlock: Node | null = null;
    for (let i = 1; i <= text.length; i += 3) {
      renderer.render(text.slice(0, i), { ...context }, false);
      if (i > 40) {
        firstBlock ??= host.firstChild;
        // Settled blocks are kept, not rebuilt.
        expect(host.firstChild).toBe(firstBlock);
      }
    }
    renderer.render(text, context, false);
    const streamed = host.innerHTML;
    const full = document.createElement('div');
    full.append(renderMarkdown(text, context));
    expect(streamed).toBe(full.innerHTML);
    renderer.render(text, context, true);
    expect(host.innerHTML).toBe(full.innerHTML);
    expect(host.querySelectorAll('button.citation')).toHaveLength(2);
  });
});

describe('streaming by appending', () => {
  const context = { citations: [], sources: [{ id: 's', document_id: 'd', chunk_id: null, page: 1, title: 'T' }] };
  const pieces = [
    ' the', ' motor', ' is', ' covered', 'for', ' five', ' years', '.', ',', ' **bold**', ' *it', 'alic*', ' `code`',
    ' [1]', '.', ' see https://example.org/x', ' www.example', '.org', ' a@b', '.org', ' &amp', ';', ' __u__', 'x',
    '\n', '\n\n', '\n- item', '\n1. one', '\n# Head', '1', ') ', '\n---', ' <b>b', ' (x', ')', '  ', ' ~~s~~', ' |',
    '\n\n1', '. ', '\n\n-', ' x', ' ünïcödé', ' 漢字', '!',
  ];
  /** A reproducible pseudo-random sequence (mulberry32). */
  function random(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('shows after every delta what rendering the last block again shows', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const next = random(seed);
      let text = '';
      for (let i = 0; i < 40; i++) text += pieces[Math.floor(next() * pieces.length)];
      const streamed = document.createElement('div');
      const renderer = new StreamingMarkdown(streamed);
      // The same, always rendering its last block again.
      const rendered = document.createElement('div');
      const again = new StreamingMarkdown(rendered);
      (again as unknown as { append: () => boolean }).append = () => false;
      for (let at = 0; at < text.length; ) {
        at = Math.min(text.length, at + 1 + Math.floor(next() * 7));
        renderer.render(text.slice(0, at), context, false);
        again.render(text.slice(0, at), context, false);
        expect(streamed.innerHTML, JSON.stringify(text.slice(0, at))).toBe(rendered.innerHTML);
      }
    }
  }, 60_000);

  it('appends plain words to the paragraph on screen instead of rebuilding it', () => {
    const streamed = document.createElement('div');
    const renderer = new StreamingMarkdown(streamed);
    renderer.render('First block.\n\nThe motor', context, false);
    const paragraph = streamed.lastElementChild;
    const text = paragraph?.firstChild;
    let sofar = 'First block.\n\nThe motor';
    for (const more of [' is', ' covered', ' for five years', ' and']) {
      sofar += more;
      renderer.render(sofar, context, false);
    }
    renderer.render('First block.\n\nThe motor is covered for five years and more', context, false);
    expect(streamed.lastElementChild).toBe(paragraph);
    expect(paragraph?.firstChild).toBe(text);
    expect(paragraph?.textContent).toBe('The motor is covered for five years and more');
  });

  it('keeps the blocks the final render leaves unchanged, and replaces the others', () => {
    const streamed = document.createElement('div');
    const renderer = new StreamingMarkdown(streamed);
    renderer.render('One.\n\nTwo [1].\n\nThree', { citations: [], sources: [] }, false);
    const [one, two] = [...streamed.children];
    renderer.render('One.\n\nTwo [1].\n\nThree.', context, true);
    expect(streamed.children[0]).toBe(one);
    expect(streamed.children[1]).not.toBe(two);
    expect(streamed.querySelectorAll('button.citation')).toHaveLength(1);
    expect(streamed.innerHTML).toBe(renderMarkdownToString('One.\n\nTwo [1].\n\nThree.', context));
  });
});

describe('linkDestination', () => {
  it('names the origin a link really goes to, in ASCII', () => {
    expect(linkDestination('https://example.org/a?b#c')).toEqual({ origin: 'https://example.org', rest: '/a?b#c' });
    expect(linkDestination('https://bank.example@evil.example:8443/x')).toEqual({ origin: 'https://evil.example:8443', rest: '/x' });
    expect(linkDestination('https://pаypal.example/')?.origin).toBe('https://xn--pypal-4ve.example');
    expect(linkDestination('mailto:a@example.org')).toEqual({ origin: 'mailto:a@example.org', rest: '' });
    expect(linkDestination('javascript:alert(1)')).toBeNull();
    expect(linkDestination('https://')).toBeNull();
  });
});
