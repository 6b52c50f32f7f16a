import type { Message, Uuid } from './types';

/**
 * Versions of an answer (Regenerate): answers that name the same question
 * (`question_id`; an answer stored without one belongs to the nearest
 * question before it). The one shown is the latest unless the person picked
 * another here; the pick is not stored, so history, export and other
 * devices show the latest.
 */
export interface Shown {
  message: Message;
  /** The question the message belongs to (its own id for a question). */
  key: Uuid;
  /** Every version of an answer, oldest first; just the message for a question. */
  versions: Message[];
  /** The shown version's place in `versions`. */
  index: number;
}

/** `messages` (in conversation order) as shown: each answer once, in its first version's place. */
export function showVersions(messages: Message[], picked: ReadonlyMap<Uuid, Uuid>): Shown[] {
  let last: Uuid | null = null;
  const keyed = messages.map((m) => {
    if (m.role === 'user') last = m.id;
    return { m, key: m.role === 'user' ? m.id : (m.question_id ?? last ?? m.id) };
  });
  const groups = new Map<Uuid, Message[]>();
  for (const { m, key } of keyed) {
    if (m.role !== 'assistant') continue;
    const group = groups.get(key);
    if (group) group.push(m);
    else groups.set(key, [m]);
  }
  const out: Shown[] = [];
  const placed = new Set<Uuid>();
  for (const { m, key } of keyed) {
    if (m.role === 'user') {
      out.push({ message: m, key, versions: [m], index: 0 });
      continue;
    }
    if (placed.has(key)) continue;
    placed.add(key);
    const versions = groups.get(key)!;
    const pick = picked.get(key);
    const at = versions.findIndex((v) => v.id === pick);
    const index = at >= 0 ? at : versions.length - 1;
    out.push({ message: versions[index], key, versions, index });
  }
  return out;
}
