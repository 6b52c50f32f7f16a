// Storage as supabase-js drives it, in Quire's private `documents` bucket: each user's folder
// is theirs alone, a file is written once, at a document's path while it is being uploaded, and
// only the service role (Quire's companion) deletes it (db/app/80_document_files.sql). Storage
// answers most errors with HTTP 400 and the real status in the body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { client, service, signedIn } from './lib.mjs';

const pdf = (text) => Buffer.from(`%PDF-1.4\n% ${text}\n%%EOF\n`);

test('upload, download, signed URL, list, upsert, remove — and B gets none of it', async () => {
  const a = await signedIn('st-a');
  const b = await signedIn('st-b');
  // A's document, registered as Quire's companion registers it: its file goes at its storage_path.
  const registered = await service()
    .from('documents')
    .insert({ owner_id: a.user.id, title: 'Manual', byte_size: 1 })
    .select('storage_path')
    .single();
  assert.equal(registered.error, null);
  const key = registered.data.storage_path;
  const bucket = a.sb.storage.from('documents');

  const up = await bucket.upload(key, pdf('first'), { contentType: 'application/pdf' });
  assert.equal(up.error, null);
  assert.equal(up.data.path, key);

  const down = await bucket.download(key);
  assert.equal(down.error, null);
  assert.equal(Buffer.from(await down.data.arrayBuffer()).toString(), pdf('first').toString());

  const signed = await bucket.createSignedUrl(key, 60);
  assert.equal(signed.error, null);
  const viaUrl = await fetch(signed.data.signedUrl);
  assert.equal(viaUrl.status, 200);
  assert.equal(Buffer.from(await viaUrl.arrayBuffer()).toString(), pdf('first').toString());

  const listed = await bucket.list(a.user.id);
  assert.equal(listed.error, null);
  assert.deepEqual(listed.data.map((o) => o.name), [key.split('/')[1]]);

  const dup = await bucket.upload(key, pdf('second'), { contentType: 'application/pdf' });
  assert.equal(dup.error?.statusCode, '409');
  // Quire's bucket has no UPDATE policy: a stored file is the one that was checked and indexed,
  // so even its owner cannot upsert over it, nor write anywhere else in their folder.
  const ownUpsert = await bucket.upload(key, pdf('second'), { contentType: 'application/pdf', upsert: true });
  assert.equal(ownUpsert.error?.statusCode, '403');
  const after = await bucket.download(key);
  assert.equal(Buffer.from(await after.data.arrayBuffer()).toString(), pdf('first').toString());

  // B: no download, no listing, no signing, no overwrite, no delete.
  const theirs = b.sb.storage.from('documents');
  const bDown = await theirs.download(key);
  assert.ok(bDown.error, 'B cannot download A\'s file');
  const bList = await theirs.list(a.user.id);
  assert.deepEqual(bList.data, []);
  const bSign = await theirs.createSignedUrl(key, 60);
  assert.ok(bSign.error, 'B cannot sign A\'s file');
  const bWrite = await theirs.upload(key, pdf('evil'), { contentType: 'application/pdf', upsert: true });
  assert.ok(bWrite.error, 'B cannot overwrite A\'s file');
  const bPlant = await theirs.upload(`${a.user.id}/${randomUUID()}.pdf`, pdf('planted'), { contentType: 'application/pdf' });
  assert.equal(bPlant.error?.statusCode, '403');
  const bRemove = await theirs.remove([key]);
  assert.deepEqual(bRemove.data, []);
  const still = await bucket.download(key);
  assert.equal(Buffer.from(await still.data.arrayBuffer()).toString(), pdf('first').toString());

  const elsewhere = await bucket.upload(`${a.user.id}/${randomUUID()}.pdf`, pdf('x'), { contentType: 'application/pdf' });
  assert.equal(elsewhere.error?.statusCode, '403');

  // A deletes a document through Quire's companion, which removes the file with the service key.
  const ownRemove = await bucket.remove([key]);
  assert.deepEqual(ownRemove.data, []);
  const kept = await bucket.download(key);
  assert.equal(Buffer.from(await kept.data.arrayBuffer()).toString(), pdf('first').toString());
  const removed = await service().storage.from('documents').remove([key]);
  assert.equal(removed.error, null);
  assert.equal(removed.data.length, 1);
  const gone = await bucket.download(key);
  assert.ok(gone.error, 'the file is gone');
});

test('anon can neither upload nor list', async () => {
  const a = await signedIn('st-anon');
  const anon = client().storage.from('documents');
  const up = await anon.upload(`${a.user.id}/${randomUUID()}.pdf`, pdf('x'), { contentType: 'application/pdf' });
  assert.ok(up.error);
  const list = await anon.list(a.user.id);
  assert.deepEqual(list.data ?? [], []);
});

test('upsert replaces an object where the policies allow it (service role, scratch bucket)', async () => {
  const svc = service();
  const name = `conformance-${randomUUID().slice(0, 8)}`;
  const made = await svc.storage.createBucket(name, { public: false });
  assert.equal(made.error, null);
  const listed = await svc.storage.listBuckets();
  assert.ok(listed.data.some((b) => b.id === name));
  const bucket = svc.storage.from(name);
  const first = await bucket.upload('notes/a.txt', Buffer.from('one'), { contentType: 'text/plain' });
  assert.equal(first.error, null);
  const again = await bucket.upload('notes/a.txt', Buffer.from('two'), { contentType: 'text/plain' });
  assert.equal(again.error?.statusCode, '409');
  const upsert = await bucket.upload('notes/a.txt', Buffer.from('two'), { contentType: 'text/plain', upsert: true });
  assert.equal(upsert.error, null);
  const down = await bucket.download('notes/a.txt');
  assert.equal(await down.data.text(), 'two');
  const listing = await bucket.list('notes');
  assert.deepEqual(listing.data.map((o) => o.name), ['a.txt']);
  const folders = await bucket.list();
  assert.deepEqual(folders.data.map((o) => [o.name, o.id]), [['notes', null]]);
  const removed = await bucket.remove(['notes/a.txt']);
  assert.equal(removed.data.length, 1);
});
