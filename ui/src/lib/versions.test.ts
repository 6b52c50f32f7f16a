import { describe, expect, it } from 'vitest';
import type { Message } from './types';
import { keepUnchanged, showVersions } from './versions';

let n = 0;
function message(role: Message['role'], question_id: string | null = null): Message {
  n += 1;
  return {
    id: `m${n}`,
    conversation_id: 'c',
    seq: n,
    role,
    status: 'complete',
    content: `text ${n}`,
    citations: [],
    sources: [],
    question_id,
    error: null,
    tools: [],
  };
}

describe('answer versions', () => {
  it('shows the latest version in the first one’s place, or the one picked', () => {
    const q1 = message('user');
    const a1 = message('assistant'); // stored before question_id: the question before it
    const q2 = message('user');
    const a2 = message('assistant', q2.id);
    const a1v2 = message('assistant', q1.id);
    const all = [q1, a1, q2, a2, a1v2];

    const shown = showVersions(all, new Map());
    expect(shown.map((s) => s.message.id)).toEqual([q1.id, a1v2.id, q2.id, a2.id]);
    expect(shown[1].versions.map((v) => v.id)).toEqual([a1.id, a1v2.id]);
    expect(shown[1].index).toBe(1);
    expect(shown[3].versions).toHaveLength(1);

    const picked = showVersions(all, new Map([[q1.id, a1.id]]));
    expect(picked.map((s) => s.message.id)).toEqual([q1.id, a1.id, q2.id, a2.id]);
    expect(picked[1].index).toBe(0);
  });
});

describe('keepUnchanged', () => {
  it('keeps the entries that show the same, so only a changed message is new', () => {
    const q = message('user');
    const a = message('assistant', q.id);
    const q2 = message('user');
    const streaming = message('assistant', q2.id);
    const first = showVersions([q, a, q2, streaming], new Map());
    const grown = { ...streaming, content: streaming.content + ' more' };
    const next = keepUnchanged(first, showVersions([q, a, q2, grown], new Map()));
    expect(next.map((s) => s.message)).toEqual([q, a, q2, grown]);
    expect(next.slice(0, 3).every((s, i) => s === first[i])).toBe(true);
    expect(next[3]).not.toBe(first[3]);
    // A new version of an answer changes its entry.
    const v2 = message('assistant', q.id);
    const again = keepUnchanged(next, showVersions([q, a, q2, grown, v2], new Map()));
    expect(again[1]).not.toBe(next[1]);
    expect(again[1].message).toBe(v2);
    expect(again[0]).toBe(next[0]);
  });
});
