// Markdown from the agent is untrusted. It is parsed by `marked`, cleaned by
// DOMPurify with a short allow-list, and only then given to the page:
// * no scripts, styles, forms, frames, event handlers or data-* attributes;
// * links keep http(s)/mailto hrefs only, and clicks go to `open_link` (the
//   web view never navigates);
// * images only from data: URLs (a remote image would be a tracking beacon);
//   others are replaced by their alt text;
// * `[n]` markers outside code become citation buttons, built as DOM nodes
//   after sanitising so the agent cannot forge one.

import DOMPurify from 'dompurify';
import { Marked } from 'marked';
import type { Citation, ContextChunk } from './types';
import { pagesSpoken } from './words';

const marked = new Marked({ gfm: true, breaks: false, async: false });

const ALLOWED_TAGS = [
  'a', 'abbr', 'b', 'blockquote', 'br', 'code', 'del', 'details', 'div', 'em', 'h1', 'h2', 'h3',
  'h4', 'h5', 'h6', 'hr', 'i', 'img', 'input', 'kbd', 'li', 'mark', 'ol', 'p', 'pre', 's', 'span',
  'strong', 'sub', 'summary', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'u', 'ul',
];
const ALLOWED_ATTR = ['href', 'title', 'alt', 'src', 'colspan', 'rowspan', 'align', 'start', 'type', 'checked', 'disabled', 'lang'];

const SAFE_LINK = /^(https?:|mailto:)/i;
const SAFE_IMAGE = /^data:image\/(png|jpe?g|gif|webp|avif);base64,[a-z0-9+/=\s]+$/i;

let purifier: ReturnType<typeof DOMPurify> | null = null;

function getPurifier(): ReturnType<typeof DOMPurify> {
  if (purifier) return purifier;
  const p = DOMPurify(window);
  p.addHook('uponSanitizeElement', (node, data) => {
    const el = node as Element;
    if (data.tagName === 'input' && el.getAttribute('type') !== 'checkbox') {
      el.remove();
    }
  });
  p.addHook('afterSanitizeAttributes', (node) => {
    const el = node as Element;
    if (el.tagName === 'A') {
      const href = el.getAttribute('href')?.trim() ?? '';
      if (SAFE_LINK.test(href)) {
        el.setAttribute('href', href);
        el.setAttribute('rel', 'noreferrer noopener');
        el.setAttribute('title', href);
      } else {
        el.removeAttribute('href');
      }
    }
    if (el.tagName === 'IMG') {
      const src = el.getAttribute('src') ?? '';
      if (!SAFE_IMAGE.test(src)) {
        const alt = el.getAttribute('alt');
        const span = el.ownerDocument.createElement('span');
        span.className = 'dropped-image';
        span.textContent = alt ? `[image: ${alt}]` : '[image]';
        el.replaceWith(span);
      }
    }
    if (el.tagName === 'INPUT') {
      el.setAttribute('disabled', '');
    }
  });
  purifier = p;
  return p;
}

/**
 * Where a link in an answer really goes, as its status line shows it: the
 * origin (the ASCII one, so a look-alike host shows as punycode, and a
 * `user@` before the host cannot pass for it), then the rest. Null for what
 * the sanitiser would not have kept.
 */
export function linkDestination(href: string): { origin: string; rest: string } | null {
  if (!SAFE_LINK.test(href.trim())) return null;
  let url: URL;
  try {
    url = new URL(href.trim());
  } catch {
    return null;
  }
  if (url.protocol === 'mailto:') return { origin: `mailto:${url.pathname}`, rest: '' };
  return { origin: url.origin, rest: `${url.pathname}${url.search}${url.hash}` };
}

/** What `[n]` can point at in one message. */
export interface CitationContext {
  citations: Citation[];
  sources: ContextChunk[];
}

/** Where the n-th citation marker leads: the citation with that key, else the n-th source. */
export interface CitationTarget {
  n: number;
  documentId: string | null;
  /** The first page the passage spans: where the viewer opens (page 1 when null). */
  page: number | null;
  /** The last page it spans: past `page` when the passage crosses a page break. */
  pageEnd: number | null;
  title: string | null;
  excerpt: string | null;
}

export function resolveCitation(n: number, context: CitationContext): CitationTarget | null {
  const byKey = context.citations.find((c) => c.key != null && String(c.key).trim() === String(n));
  if (byKey) {
    const source = byKey.document_id
      ? null
      : context.sources.find((s) => s.chunk_id != null && s.chunk_id === byKey.chunk_id);
    return {
      n,
      documentId: byKey.document_id ?? source?.document_id ?? null,
      page: byKey.page ?? source?.page ?? null,
      pageEnd: byKey.page != null ? (byKey.page_end ?? byKey.page) : (source?.page_end ?? source?.page ?? null),
      title: byKey.title ?? source?.title ?? null,
      excerpt: byKey.excerpt ?? null,
    };
  }
  const source = context.sources[n - 1];
  if (source) {
    return {
      n,
      documentId: source.document_id,
      page: source.page ?? null,
      pageEnd: source.page_end ?? source.page ?? null,
      title: source.title,
      excerpt: null,
    };
  }
  return null;
}

/** Sanitises an HTML string into a fragment (exported for the tests). */
export function sanitize(html: string): DocumentFragment {
  return getPurifier().sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|data:image\/)/i,
    RETURN_DOM_FRAGMENT: true,
  }) as DocumentFragment;
}

const MARKER = /\[(\d{1,3})\]/g;

/** Replaces `[n]` in text nodes (outside code, pre and links) with citation buttons. */
function addCitations(root: DocumentFragment, context: CitationContext): void {
  const doc = root.ownerDocument;
  const walker = doc.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts: Text[] = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node as Text;
    if (!MARKER.test(text.data)) continue;
    MARKER.lastIndex = 0;
    if (text.parentElement?.closest('code, pre, a')) continue;
    texts.push(text);
  }
  for (const text of texts) {
    const parts = doc.createDocumentFragment();
    let last = 0;
    for (const match of text.data.matchAll(MARKER)) {
      const n = Number(match[1]);
      const target = resolveCitation(n, context);
      const at = match.index ?? 0;
      if (!target) continue;
      parts.append(text.data.slice(last, at));
      // Keep the marker on the line of the punctuation that follows it.
      const end = at + match[0].length;
      const trailing = /^[.,;:!?)\]]+/.exec(text.data.slice(end))?.[0] ?? '';
      const wrap = doc.createElement('span');
      wrap.className = 'cite';
      wrap.append(citationButton(doc, target), trailing);
      parts.append(wrap);
      last = end + trailing.length;
    }
    if (last === 0) continue;
    parts.append(text.data.slice(last));
    text.replaceWith(parts);
  }
}

function citationButton(doc: Document, target: CitationTarget): HTMLButtonElement {
  const button = doc.createElement('button');
  button.type = 'button';
  button.className = 'citation';
  button.dataset.testid = 'citation';
  button.dataset.n = String(target.n);
  if (target.documentId) button.dataset.documentId = target.documentId;
  if (target.page != null) button.dataset.page = String(target.page);
  if (target.page != null && target.pageEnd != null && target.pageEnd > target.page) {
    button.dataset.pageEnd = String(target.pageEnd);
  }
  const where = [target.title, pagesSpoken(target.page, target.pageEnd)].filter(Boolean).join(', ');
  button.setAttribute('aria-label', `Source ${target.n}${where ? `: ${where}` : ''}`);
  button.title = where || `Source ${target.n}`;
  button.textContent = String(target.n);
  return button;
}

/** Renders an answer's Markdown into a sanitised fragment with citation buttons. */
export function renderMarkdown(text: string, context: CitationContext = { citations: [], sources: [] }): DocumentFragment {
  const html = marked.parse(text) as string;
  const fragment = sanitize(html);
  addCitations(fragment, context);
  return fragment;
}

/** The same, as an HTML string (tests and copy-as-HTML). */
export function renderMarkdownToString(text: string, context?: CitationContext): string {
  const host = document.createElement('div');
  host.append(renderMarkdown(text, context));
  return host.innerHTML;
}

/**
 * Where the settled part of a streaming text ends: the last blank line that
 * is not inside a fenced code block. Blocks before it will not change as more
 * text arrives, so a streaming answer re-renders only its last block. `from`,
 * a settled end found earlier in a prefix of `text` (outside any fence), is
 * where the search starts: the text before it is not read again.
 */
export function stableEnd(text: string, from = 0): number {
  let inFence = false;
  let fence = '';
  let end = from;
  let lineStart = from;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) break; // the last line is still being written
    const line = text.slice(lineStart, lineEnd);
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (marker) {
      if (!inFence) {
        inFence = true;
        fence = marker[1];
      } else if (marker[1][0] === fence[0] && marker[1].length >= fence.length && line.trim() === marker[1]) {
        inFence = false;
      }
    } else if (!inFence && line.trim() === '') {
      end = lineEnd + 1;
    }
    lineStart = lineEnd + 1;
  }
  return end;
}

/**
 * Characters that can change how Markdown reads a paragraph: emphasis, code,
 * links, images, HTML, entities, escapes, strikethrough, tables, autolinks
 * (`:` of a scheme, `@` of an address), the parentheses of a link's
 * destination, and line breaks (a new block, a setext heading).
 */
const SIGNIFICANT = /[\n\r\t*_`[\]!<>&\\~|()@:]/;
/** A paragraph's first line: nothing appended on that line makes it a list, heading, quote or code. */
const PARAGRAPH_START = /^ {0,3}\p{L}/u;

/** The last block of a streaming text as rendered, when more plain text can be appended to it as is. */
interface Tail {
  /** The Markdown the tail was rendered from. */
  source: string;
  /** Its only block, a paragraph; null when the next text must be rendered again. */
  paragraph: HTMLParagraphElement | null;
}

/**
 * Renders a growing Markdown text into `host`, re-rendering only what changed
 * since the last call: settled blocks stay in the DOM, the last block is
 * replaced, and text that only extends the last paragraph with plain words
 * is appended to it as a text node (what a full parse would give: see
 * `appendable`). `full` renders the final text: blocks that come out the same
 * as on screen are kept, the others replaced.
 */
export class StreamingMarkdown {
  private settled = '';
  private settledNodes = 0;
  /** The citations and sources the settled blocks were rendered with. */
  private contextKey = '';
  private tail: Tail | null = null;
  /** Whether the last render was a streaming one (not `full`). */
  private streamed = false;

  constructor(private host: HTMLElement) {}

  /** Whether what is on screen was streamed with this context (so a render without `full` keeps it). */
  streamedWith(context: CitationContext): boolean {
    return this.streamed && this.contextKey === JSON.stringify(context);
  }

  render(text: string, context: CitationContext, full: boolean): void {
    const key = JSON.stringify(context);
    this.streamed = !full;
    if (full) {
      this.contextKey = key;
      this.settled = '';
      this.settledNodes = 0;
      this.tail = null;
      this.replaceChanged(renderMarkdown(text, context));
      return;
    }
    if (key !== this.contextKey || !text.startsWith(this.settled)) {
      this.contextKey = key;
      this.host.replaceChildren();
      this.settled = '';
      this.settledNodes = 0;
      this.tail = null;
    }
    const source = text.slice(this.settled.length);
    if (this.tail && this.append(source)) return;
    const end = stableEnd(text, this.settled.length);
    // Drop the previous tail.
    while (this.host.childNodes.length > this.settledNodes) this.host.lastChild!.remove();
    if (end > this.settled.length) {
      const grown = renderMarkdown(text.slice(this.settled.length, end), context);
      this.settledNodes += grown.childNodes.length;
      this.host.append(grown);
      this.settled = text.slice(0, end);
    }
    const tail = text.slice(this.settled.length);
    const rendered = renderMarkdown(tail, context);
    this.tail = { source: tail, paragraph: onlyParagraph(tail, rendered) };
    this.host.append(rendered);
  }

  /** Appends `source`'s new text to the tail's paragraph when that is what parsing it would give. */
  private append(source: string): boolean {
    const tail = this.tail!;
    if (!tail.paragraph || !source.startsWith(tail.source)) return false;
    const added = source.slice(tail.source.length);
    if (!appendable(tail.source, added)) return false;
    const last = tail.paragraph.lastChild;
    if (last instanceof Text) last.appendData(added);
    else tail.paragraph.append(added);
    tail.source = source;
    return true;
  }

  /** Replaces the host's children with `fragment`'s, keeping each one that is equal already. */
  private replaceChanged(fragment: DocumentFragment): void {
    const next = [...fragment.childNodes];
    const current = [...this.host.childNodes];
    if (next.length !== current.length) {
      this.host.replaceChildren(fragment);
      return;
    }
    next.forEach((node, i) => {
      if (!current[i].isEqualNode(node)) current[i].replaceWith(node);
    });
  }
}

/**
 * Whether `added`, written after `before` in one paragraph, is plain text
 * that cannot change how the paragraph parses: no significant character in
 * it; its line started with a letter (so it is no list item, heading or
 * quote to be); none in the word it continues (an entity, a citation's
 * punctuation, an autolink being typed, `www.` included); and none just
 * before a space it starts with (a delimiter run's meaning depends on its
 * neighbour).
 */
function appendable(before: string, added: string): boolean {
  if (SIGNIFICANT.test(added)) return false;
  if (!PARAGRAPH_START.test(before.slice(before.lastIndexOf('\n') + 1))) return false;
  const word = /\S*$/.exec(before)![0];
  if (/www\./i.test(word + added)) return false;
  return /^\s/.test(added) ? !SIGNIFICANT.test(before.slice(-1)) : !SIGNIFICANT.test(word);
}

/** The paragraph `source` rendered to, when it is one paragraph without inline HTML; else null. */
function onlyParagraph(source: string, rendered: DocumentFragment): HTMLParagraphElement | null {
  if (!PARAGRAPH_START.test(source) || source.includes('<')) return null;
  const blocks = [...rendered.children];
  return blocks.length === 1 && blocks[0] instanceof HTMLParagraphElement ? blocks[0] : null;
}
