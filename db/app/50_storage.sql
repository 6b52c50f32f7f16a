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
-- The bucket accepts application/pdf only; the size limit is the project's
-- global upload limit (the client checks its own limit before sending).

insert into storage.buckets (id, name, public, allowed_mime_types)
values ('documents', 'documents', false, array['application/pdf'])
on conflict (id) do nothing;

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
