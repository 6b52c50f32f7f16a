import { describe, expect, it } from 'vitest';
import { openingPage, pagesLabel, pagesSpoken } from './words';

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
