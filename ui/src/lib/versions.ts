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

/**
 * `next`, with each entry that shows the same as one of `previous` replaced by
 * that one: the same message object, version and versions. The chat view's list
 * is keyed on these objects, so while an answer streams (a new `showVersions`
 * result each frame) only the streaming answer's entry is new, and only its
 * view updates; with every entry new, every message on screen re-rendered its
 * props each frame (40 to 140 ms frames in the desktop bench).
 */
export function keepUnchanged(previous: readonly Shown[], next: Shown[]): Shown[] {
  const before = new Map(previous.map((s) => [s.message.id, s]));
  return next.map((s) => {
    const old = before.get(s.message.id);
    const same =
      old !== undefined &&
      old.key === s.key &&
      old.index === s.index &&
      old.versions.length === s.versions.length &&
      old.versions.every((v, i) => v === s.versions[i]);
    return same ? old : s;
  });
}
