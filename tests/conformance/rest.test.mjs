// PostgREST as supabase-js drives it, two users in every test: A's rows are A's alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { client, service, signedIn } from './lib.mjs';

async function conversations(owner, titles) {
  const { data, error } = await owner.sb
    .from('conversations')
    .insert(titles.map((title) => ({ owner_id: owner.user.id, title })))
    .select();
  assert.equal(error, null);
  return data;
}

test('insert with select() returns the row; B sees none of it', async () => {
  const a = await signedIn('rest-a');
  const b = await signedIn('rest-b');
  const [row] = await conversations(a, ['Tax questions']);
  assert.equal(row.title, 'Tax questions');
  assert.equal(row.owner_id, a.user.id);

  const mine = await a.sb.from('conversations').select('id,title').eq('id', row.id);
  assert.deepEqual(mine.data, [{ id: row.id, title: 'Tax questions' }]);
  const theirs = await b.sb.from('conversations').select('*').eq('id', row.id);
  assert.equal(theirs.error, null);
  assert.deepEqual(theirs.data, []);
});

test('filters, order, range and an exact count', async () => {
  const a = await signedIn('rest-filter');
  const b = await signedIn('rest-filter-b');
  await conversations(a, ['alpha one', 'Alpha two', 'beta', 'ALPHA three', 'gamma']);
  await conversations(b, ['alpha of B']);

  const page = await a.sb
    .from('conversations')
    .select('title', { count: 'exact' })
    .ilike('title', '%alpha%')
    .order('title', { ascending: true })
    .range(0, 1);
  assert.equal(page.error, null);
  assert.equal(page.count, 3, 'count covers A\'s matching rows only');
  assert.deepEqual(page.data.map((r) => r.title), ['ALPHA three', 'Alpha two']);
  assert.equal(page.status, 206);

  const some = await a.sb
    .from('conversations')
    .select('title')
    .in('title', ['beta', 'gamma', 'alpha of B'])
    .order('title', { ascending: false });
  assert.deepEqual(some.data.map((r) => r.title), ['gamma', 'beta']);

  const eq = await a.sb.from('conversations').select('title').eq('title', 'beta').single();
  assert.equal(eq.error, null);
  assert.equal(eq.data.title, 'beta');
});

test('update and delete with select(): the owner can, B changes nothing', async () => {
  const a = await signedIn('rest-upd');
  const b = await signedIn('rest-upd-b');
  const [row] = await conversations(a, ['Draft']);

  const hijack = await b.sb.from('conversations').update({ title: 'mine now' }).eq('id', row.id).select();
  assert.equal(hijack.error, null);
  assert.deepEqual(hijack.data, []);
  const wipe = await b.sb.from('conversations').delete().eq('id', row.id).select();
  assert.deepEqual(wipe.data, []);

  const renamed = await a.sb.from('conversations').update({ title: 'Final' }).eq('id', row.id).select();
  assert.equal(renamed.error, null);
  assert.equal(renamed.data[0].title, 'Final');

  const gone = await a.sb.from('conversations').delete().eq('id', row.id).select('id');
  assert.deepEqual(gone.data, [{ id: row.id }]);
  const none = await a.sb.from('conversations').select('id').eq('id', row.id);
  assert.deepEqual(none.data, []);
});

test('inserting a row for someone else is a 403 with code 42501', async () => {
  const a = await signedIn('rest-spoof');
  const b = await signedIn('rest-spoof-b');
  const { error, status } = await a.sb
    .from('conversations')
    .insert({ owner_id: b.user.id, title: 'planted' })
    .select();
  assert.equal(status, 403);
  assert.equal(error.code, '42501');
  const seen = await service().from('conversations').select('id').eq('owner_id', b.user.id);
  assert.deepEqual(seen.data, []);
});

test('anon reads nothing owner-scoped: 401 with 42501', async () => {
  const { error, status } = await client().from('documents').select('*');
  assert.equal(status, 401);
  assert.equal(error.code, '42501');
});

test('unknown tables and unexposed schemas get PostgREST\'s codes', async () => {
  const a = await signedIn('rest-unknown');
  const table = await a.sb.from('no_such_table').select('*');
  assert.equal(table.status, 404);
  assert.equal(table.error.code, 'PGRST205');
  const ai = await a.sb.schema('ai').from('sources').select('*');
  assert.equal(ai.status, 406);
  assert.equal(ai.error.code, 'PGRST106');
});

/** A ready document with chunks for `owner`, written as the companion does (service role). */
async function readyDocument(owner, title, pages) {
  const svc = service();
  const doc = await svc
    .from('documents')
    .insert({ owner_id: owner.user.id, title, byte_size: 1234, status: 'ready', page_count: pages.length })
    .select()
    .single();
  assert.equal(doc.error, null);
  const chunks = await svc.from('document_chunks').insert(
    pages.map((text, i) => ({
      owner_id: owner.user.id,
      document_id: doc.data.id,
      chunk_id: randomUUID(),
      page: i + 1,
      ordinal: i,
      text,
    })),
  );
  assert.equal(chunks.error, null);
  return doc.data;
}

test('textSearch and rpc(search_chunks) find A\'s text for A only', async () => {
  const a = await signedIn('rest-fts');
  const b = await signedIn('rest-fts-b');
  const doc = await readyDocument(a, 'Botany notes', [
    'Chlorophyll absorbs light most strongly in the blue and red parts of the spectrum.',
    'Photosynthesis turns carbon dioxide and water into glucose and oxygen.',
  ]);
  await readyDocument(b, 'Engine manual', ['Change the oil every ten thousand kilometres.']);

  const fts = await a.sb
    .from('document_chunks')
    .select('page,text')
    .textSearch('fts', 'photosynthesis glucose', { type: 'websearch', config: 'english' });
  assert.equal(fts.error, null);
  assert.deepEqual(fts.data.map((r) => r.page), [2]);
  const ftsB = await b.sb
    .from('document_chunks')
    .select('page')
    .textSearch('fts', 'photosynthesis', { type: 'websearch', config: 'english' });
  assert.deepEqual(ftsB.data, []);

  const hits = await a.sb.rpc('search_chunks', { query: 'how does photosynthesis work', match_count: 5 });
  assert.equal(hits.error, null);
  assert.equal(hits.data[0].document_id, doc.id);
  assert.equal(hits.data[0].page, 2);
  assert.equal(hits.data[0].title, 'Botany notes');

  const none = await b.sb.rpc('search_chunks', { query: 'photosynthesis', match_count: 5 });
  assert.equal(none.error, null);
  assert.deepEqual(none.data, []);

  const missing = await a.sb.rpc('no_such_function', {});
  assert.equal(missing.status, 404);
  assert.equal(missing.error.code, 'PGRST202');
});
