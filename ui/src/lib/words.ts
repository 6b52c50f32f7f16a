// Words for people: document status, error codes, times.

import type { Document, ErrorView } from './types';

/** "Uploading 42%", "Extracting text…", "Ready", "Failed: <reason>", … */
export function documentStatusText(doc: Document): string {
  if (isInterrupted(doc)) return 'Upload interrupted';
  if (isUploadingElsewhere(doc)) return 'Uploading from another device';
  switch (doc.status) {
    case 'uploading': {
      const pct = uploadPercent(doc);
      return pct === null ? 'Uploading…' : `Uploading ${pct}%`;
    }
    case 'stored':
      return 'Waiting to extract…';
    case 'extracting':
      return 'Extracting text…';
    case 'indexing':
      return 'Indexing…';
    case 'ready':
      return 'Ready';
    case 'no_text':
      return 'No text layer — stored but not searchable';
    case 'failed':
      return `Failed: ${doc.error ?? 'unknown reason'}`;
    default:
      return String(doc.status);
  }
}

export function uploadPercent(doc: Document): number | null {
  if (!doc.upload || doc.upload.total <= 0) return null;
  return Math.min(100, Math.floor((doc.upload.sent / doc.upload.total) * 100));
}

/**
 * An upload nothing sends any more: this device could not finish it (the app quit, and the file
 * is gone or changed), or it has been uploading longer than the server's in-flight window. The
 * core decides (`Document.uploading`, crates/core/src/state.rs `uploading`). Nothing happens to
 * it until the person chooses Retry (with the file) or Delete.
 */
export function isInterrupted(doc: Document): boolean {
  return doc.uploading === 'interrupted';
}

/** An upload another device began lately and may still be sending: this device does nothing. */
export function isUploadingElsewhere(doc: Document): boolean {
  return doc.uploading === 'elsewhere';
}

/** Whether ingestion is still running (a progress bar is shown); an interrupted upload is not. */
export function isBusy(doc: Document): boolean {
  if (isInterrupted(doc) || isUploadingElsewhere(doc)) return false;
  return doc.status === 'uploading' || doc.status === 'stored' || doc.status === 'extracting' || doc.status === 'indexing';
}

/** The sign-in error shown for a code; the core's message is already for people. */
export function signInErrorText(error: ErrorView): string {
  switch (error.code) {
    case 'invalid_credentials':
      return 'That email and password do not match an account. Check them and try again.';
    case 'offline':
      return `Quire cannot reach the server. Check your connection and try again. (${error.message})`;
    case 'sign_in_cancelled':
      return 'Signing in in the browser was cancelled. You can try again.';
    case 'cancelled':
      return 'Sign-in cancelled.';
    case 'rate_limited':
      return 'Too many attempts. Wait a minute and try again.';
    default:
      return error.message;
  }
}

export function conversationTitle(title: string | null | undefined): string {
  return title?.trim() || 'New conversation';
}

const rtf = typeof Intl !== 'undefined' ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' }) : null;

export function relativeTime(at: string, nowMs = Date.now()): string {
  const t = Date.parse(at);
  if (Number.isNaN(t) || !rtf) return '';
  const s = Math.round((t - nowMs) / 1000);
  const abs = Math.abs(s);
  if (abs < 60) return 'just now';
  if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  if (abs < 7 * 86400) return rtf.format(Math.round(s / 86400), 'day');
  return new Date(t).toLocaleDateString();
}

export function fileName(path: string): string {
  return path.split(/[\\/]/).pop() || path;
}

export function humanBytes(bytes: number | null | undefined): string {
  if (bytes == null) return '';
  if (bytes < 1000) return `${bytes} bytes`;
  const units = ['KB', 'MB', 'GB'];
  let v = bytes;
  let u = 'B';
  for (const unit of units) {
    v /= 1000;
    u = unit;
    if (v < 1000) break;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${u}`;
}

/**
 * The pages a source spans, as a label: "p. 3", or "pp. 3–4" for a passage
 * across a page break; null when its pages are unknown. A missing `pageEnd`
 * (answers stored before it existed) reads as the one page.
 */
export function pagesLabel(page: number | null | undefined, pageEnd: number | null | undefined): string | null {
  if (page == null) return null;
  return pageEnd != null && pageEnd > page ? `pp. ${page}–${pageEnd}` : `p. ${page}`;
}

/** The same spelled out, for screen readers and tooltips: "page 3", "pages 3 to 4". */
export function pagesSpoken(page: number | null | undefined, pageEnd: number | null | undefined): string | null {
  if (page == null) return null;
  return pageEnd != null && pageEnd > page ? `pages ${page} to ${pageEnd}` : `page ${page}`;
}

/** Where the viewer opens a source: its first page, else page 1. */
export function openingPage(page: number | null | undefined): number {
  return page ?? 1;
}
