import { describe, expect, it } from 'vitest';
import type { Message } from './types';
import { showVersions } from './versions';

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
