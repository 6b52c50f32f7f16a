import { describe, expect, it } from 'vitest';
import type { Document } from './types';
import { documentStatusText, isBusy, isInterrupted, isUploadingElsewhere, openingPage, pagesLabel, pagesSpoken } from './words';

describe('the pages a source spans', () => {
  it('one page says "p. 3"; a chunk across a page break says "pp. 3–4"', () => {
    expect(pagesLabel(3, 3)).toBe('p. 3');
    expect(pagesLabel(3, 4)).toBe('pp. 3–4');
    expect(pagesSpoken(3, 3)).toBe('page 3');
    expect(pagesSpoken(3, 4)).toBe('pages 3 to 4');
  });

  it('an answer stored before page_end existed reads as its one page', () => {
    expect(pagesLabel(5, undefined)).toBe('p. 5');
    expect(pagesLabel(5, null)).toBe('p. 5');
    expect(pagesSpoken(5, undefined)).toBe('page 5');
  });

  it('unknown pages name no page, and the viewer opens at page 1', () => {
    expect(pagesLabel(null, null)).toBeNull();
    expect(pagesLabel(undefined, undefined)).toBeNull();
    expect(pagesSpoken(null, null)).toBeNull();
    expect(openingPage(null)).toBe(1);
    expect(openingPage(undefined)).toBe(1);
  });

  it('the viewer opens at the first page of a range', () => {
    expect(openingPage(3)).toBe(3);
  });
});

describe('an upload cut by quitting', () => {
  const doc = (over: Partial<Document>): Document => ({
    id: 'd',
    title: 'Harbour rafts',
    status: 'uploading',
    error: null,
    page_count: null,
    byte_size: 1000,
    updated_at: '2026-12-07T00:00:00Z',
    upload: null,
    uploading: null,
    ...over,
  });

  it('is interrupted, not in progress: nothing is being prepared until Retry', () => {
    const cut = doc({ error: 'the file is no longer where it was', uploading: 'interrupted' });
    expect(isInterrupted(cut)).toBe(true);
    expect(isBusy(cut)).toBe(false);
    expect(documentStatusText(cut)).toBe('Upload interrupted');
    // Cut on another device: no error of this device's, the core says interrupted all the same.
    const stale = doc({ uploading: 'interrupted' });
    expect(isInterrupted(stale)).toBe(true);
    expect(documentStatusText(stale)).toBe('Upload interrupted');
  });

  it('an upload this device sends is in progress', () => {
    const going = doc({ upload: { sent: 10, total: 1000 }, uploading: 'here' });
    expect(isInterrupted(going)).toBe(false);
    expect(isBusy(going)).toBe(true);
    expect(documentStatusText(going)).toBe('Uploading 1%');
  });

  it('an upload another device is sending says so, with no progress shown here', () => {
    const elsewhere = doc({ uploading: 'elsewhere' });
    expect(isUploadingElsewhere(elsewhere)).toBe(true);
    expect(isInterrupted(elsewhere)).toBe(false);
    expect(isBusy(elsewhere)).toBe(false);
    expect(documentStatusText(elsewhere)).toBe('Uploading from another device');
  });
});
