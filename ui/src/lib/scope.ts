// Asking about chosen documents: the `#title` the person is typing in the
// composer, the documents it may name, and the text once one is chosen.
// The scope itself is stored on the conversation (src-tauri/IPC.md, `set_scope`).

import type { Document, Uuid } from './types';

/** A `#…` being typed: where the `#` is and what follows it up to the caret. */
export interface HashQuery {
  start: number;
  query: string;
}

/** Characters of a `#…` query looked at: a title's beginning is enough. */
const MAX_QUERY = 80;
/** Documents offered at once. */
export const MAX_SUGGESTIONS = 6;

/**
 * The `#…` the caret ends, if any: a `#` at the start or after a space or a
 * line break, then no line break up to the caret.
 */
export function hashQuery(text: string, caret: number): HashQuery | null {
  const before = text.slice(0, caret);
  const start = before.lastIndexOf('#');
  if (start < 0) return null;
  if (start > 0 && !/\s/.test(before[start - 1])) return null;
  const query = before.slice(start + 1);
  if (query.includes('\n') || query.length > MAX_QUERY) return null;
  return { start, query };
}

/**
 * The documents a `#query` may name: those not yet chosen whose title
 * contains it (any case), titles that start with it first, at most
 * {@link MAX_SUGGESTIONS}. Documents still being prepared count too: they
 * join the search once ready.
 */
export function matchDocuments(documents: Document[], query: string, chosen: Uuid[]): Document[] {
  const q = query.trim().toLowerCase();
  const open = documents.filter((d) => !chosen.includes(d.id) && d.status !== 'failed' && d.status !== 'no_text');
  const hits = open.filter((d) => d.title.toLowerCase().includes(q));
  const starts = (d: Document) => (d.title.toLowerCase().startsWith(q) ? 0 : 1);
  return hits.sort((a, b) => starts(a) - starts(b) || a.title.localeCompare(b.title)).slice(0, MAX_SUGGESTIONS);
}

/** `text` without the `#…` from `at.start` to `caret`, and where the caret goes. */
export function withoutHash(text: string, at: HashQuery, caret: number): { text: string; caret: number } {
  let end = caret;
  // One space after the removed `#…` goes with it when one is before it too.
  const spaceBefore = at.start === 0 || /\s/.test(text[at.start - 1]);
  if (spaceBefore && text[end] === ' ') end += 1;
  return { text: text.slice(0, at.start) + text.slice(end), caret: at.start };
}

/** The scope with `id` added once, in the order chosen. */
export function addTo(scope: Uuid[], id: Uuid): Uuid[] {
  return scope.includes(id) ? scope : [...scope, id];
}

/** The scope without `id`. */
export function removeFrom(scope: Uuid[], id: Uuid): Uuid[] {
  return scope.filter((x) => x !== id);
}
