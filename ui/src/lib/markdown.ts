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

/** What `[n]` can point at in one message. */
export interface CitationContext {
  citations: Citation[];
  sources: ContextChunk[];
}

/** Where the n-th citation marker leads: the citation with that key, else the n-th source. */
export interface CitationTarget {
  n: number;
  documentId: string | null;
  page: number | null;
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
      title: byKey.title ?? source?.title ?? null,
      excerpt: byKey.excerpt ?? null,
    };
  }
  const source = context.sources[n - 1];
  if (source) {
    return { n, documentId: source.document_id, page: source.page ?? null, title: source.title, excerpt: null };
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
  const where = [target.title, target.page != null ? `page ${target.page}` : null].filter(Boolean).join(', ');
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
