-- Quire: the private `documents` Storage bucket and who may touch its objects.
--
-- Needs: 00_prerequisites.sql (Powabase storage schema: storage.buckets,
-- storage.objects, storage.foldername()).
--
-- Object keys are '<owner uid>/<document id>.pdf' (documents.storage_path).
-- A signed-in user may upload, download, list and delete objects only under
-- their own first folder; anon may do nothing; the service role (the
-- companion, which streams the file into the AI service) bypasses RLS.
--
-- No UPDATE policy, deliberately: uploads never overwrite (each document has
-- a fresh id, so `x-upsert` is never needed), and an object once stored is the
-- one the companion ingested, so a client must not be able to replace it
-- behind the index's back. A retried upload that meets 409 Duplicate means
-- the first attempt landed.
--
-- The bucket accepts application/pdf only. Its file_size_limit is Quire's one
-- size limit: Storage refuses larger objects (single and TUS uploads alike),
-- and the client and the companion read it from here to refuse a larger file
-- before a byte is sent. 52,428,800 bytes (50 MiB) is Storage's default global
-- FILE_SIZE_LIMIT, which a bucket's limit can only lower, so it must never be
-- set above the platform's (docs/platform-contract.md).
--
-- Signed-in users may read this bucket's row (and no other) so the client can
-- learn the limit with GET /storage/v1/bucket/documents: Storage's getBucket
-- reads storage.buckets as the caller, under RLS. Nobody but the service role
-- may change it.

insert into storage.buckets (id, name, public, allowed_mime_types, file_size_limit)
values ('documents', 'documents', false, array['application/pdf'], 52428800)
on conflict (id) do update
  set file_size_limit = excluded.file_size_limit;

drop policy if exists users_read_the_documents_bucket on storage.buckets;
create policy users_read_the_documents_bucket on storage.buckets
  for select to authenticated
  using (id = 'documents');

drop policy if exists owner_uploads_own_document_files on storage.objects;
create policy owner_uploads_own_document_files on storage.objects
  for insert to authenticated
  with check (
    bucket_id = 'documents'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

drop policy if exists owner_reads_own_document_files on storage.objects;
create policy owner_reads_own_document_files on storage.objects
  for select to authenticated
  using (
    bucket_id = 'documents'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

drop policy if exists owner_deletes_own_document_files on storage.objects;
create policy owner_deletes_own_document_files on storage.objects
  for delete to authenticated
  using (
    bucket_id = 'documents'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );
