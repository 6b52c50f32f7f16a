import { describe, expect, it } from 'vitest';
import { addTo, hashQuery, matchDocuments, removeFrom, withoutHash } from './scope';
import type { Document } from './types';

function doc(id: string, title: string, status: Document['status'] = 'ready'): Document {
  return { id, title, status, error: null, page_count: 3, byte_size: 1000, updated_at: '2026-01-01T00:00:00Z', upload: null, uploading: null };
}

describe('a #title typed in the composer', () => {
  it('is found only when the # starts a word and the caret ends it on one line', () => {
    expect(hashQuery('#lea', 4)).toEqual({ start: 0, query: 'lea' });
    expect(hashQuery('What does #X200 man', 19)).toEqual({ start: 10, query: 'X200 man' });
    expect(hashQuery('What does #', 11)).toEqual({ start: 10, query: '' });
    expect(hashQuery('issue#12', 8)).toBeNull();
    expect(hashQuery('#lease\nand more', 15)).toBeNull();
    expect(hashQuery('no hash here', 12)).toBeNull();
    // The caret decides: text after it is not part of the query.
    expect(hashQuery('#lease rest', 3)).toEqual({ start: 0, query: 'le' });
  });

  it('offers the documents whose title contains it, those that start with it first, none already chosen', () => {
    const docs = [
      doc('1', 'Tenancy lease.pdf'),
      doc('2', 'Lease 2025.pdf'),
      doc('3', 'X200 manual.pdf'),
      doc('4', 'Lease scan.pdf', 'no_text'),
      doc('5', 'Lease draft.pdf', 'indexing'),
    ];
    expect(matchDocuments(docs, 'lease', []).map((d) => d.id)).toEqual(['2', '5', '1']);
    expect(matchDocuments(docs, 'LEASE', ['2']).map((d) => d.id)).toEqual(['5', '1']);
    expect(matchDocuments(docs, '', []).map((d) => d.id)).toEqual(['2', '5', '1', '3']);
    expect(matchDocuments(docs, 'weather', [])).toEqual([]);
  });

  it('goes from the text once its document is chosen, with one space', () => {
    const text = 'What does #lea say about pets?';
    const at = hashQuery(text, 14)!;
    expect(withoutHash(text, at, 14)).toEqual({ text: 'What does say about pets?', caret: 10 });
    expect(withoutHash('#lea', { start: 0, query: 'lea' }, 4)).toEqual({ text: '', caret: 0 });
  });

  it('keeps each document once, in the order chosen', () => {
    expect(addTo(['a'], 'b')).toEqual(['a', 'b']);
    expect(addTo(['a', 'b'], 'a')).toEqual(['a', 'b']);
    expect(removeFrom(['a', 'b'], 'a')).toEqual(['b']);
  });
});
