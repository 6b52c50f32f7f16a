-- Quire: a document's file is written once, by its owner, while the
-- document is `uploading`, and never replaced.
--
-- Needs: 10_documents.sql (public.documents), 50_storage.sql (the
-- `documents` bucket and its read policy), and TRIGGER on storage.objects
-- (Supabase Storage grants `postgres` ALL on storage.objects, its tenant
-- migration 0049).
--
-- Why. The companion checks an upload (a PDF, of the registered size) under
-- the user's token, and its ingest worker later streams whatever is at that
-- key with the service key. Whatever can change the object between the two
-- defeats the check. 50_storage.sql let an owner write any key under their
-- folder and delete their files; and Storage itself checks an upload's right
-- to write *before* it reads the body (a rolled-back probe as the caller),
-- then writes the row as its super user with an upsert
-- (docs/platform-contract.md, "Storage"): two uploads to one key that both
-- passed the probe end with the later one replacing the earlier, policies
-- or not.
--
-- So, replacing 50_storage.sql's upload and delete policies:
--  * owner_uploads_the_file_of_a_document_being_uploaded: a signed-in user
--    may create only the storage_path of their own document, and only while
--    it is `uploading` (the companion moves it to `stored` once it has
--    checked the file; ARCHITECTURE.md, "Upload");
--  * no DELETE policy: an owner deletes a document through the companion
--    (DELETE /api/documents/{id}), which removes the file with the service
--    key;
--  * no UPDATE policy (there never was one), so `x-upsert` and moves are
--    refused;
--  * the trigger documents_files_are_written_once, for every writer
--    including Storage's super user: an object of the `documents` bucket is
--    created only at the storage_path of a document that is `uploading`, and
--    never updated (an upsert over it, a move into or out of the bucket).
--    It raises 42501, which Storage answers as 403 like a refused policy.
-- The bucket itself stays private, PDF only (Content-Type) and capped by its
-- file_size_limit (50_storage.sql), re-stated here because 50_storage.sql
-- leaves allowed_mime_types of an existing bucket alone.
-- The worker still checks what it streams (the `%PDF-` header and the
-- registered size, and stops at that size: crates/companion/src/ingest.rs):
-- the database is one guard, not the only one.

update storage.buckets
set public = false, allowed_mime_types = array['application/pdf'], file_size_limit = 52428800
where id = 'documents';

-- The trigger finds a document by its storage_path.
create index if not exists documents_storage_path_idx on public.documents (storage_path);

drop policy if exists owner_uploads_own_document_files on storage.objects;
drop policy if exists owner_deletes_own_document_files on storage.objects;

drop policy if exists owner_uploads_the_file_of_a_document_being_uploaded on storage.objects;
create policy owner_uploads_the_file_of_a_document_being_uploaded on storage.objects
  for insert to authenticated
  with check (
    bucket_id = 'documents'
    and exists (
      select 1
      from public.documents d
      where d.storage_path = name
        and d.owner_id = (select auth.uid())
        and d.status = 'uploading'
    )
  );

-- SECURITY DEFINER: it must see the document whoever writes (RLS would hide
-- other users' documents from a caller, and the check must not depend on
-- who asks).
create or replace function private.documents_files_are_written_once()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    raise exception 'a file of the documents bucket is never replaced or moved'
      using errcode = '42501';
  end if;
  if not exists (
    select 1 from public.documents d
    where d.storage_path = new.name and d.status = 'uploading'
  ) then
    raise exception 'a file of the documents bucket is written only for a document being uploaded'
      using errcode = '42501';
  end if;
  return new;
end;
$$;
revoke all on function private.documents_files_are_written_once()
  from public, anon, authenticated, service_role;

drop trigger if exists documents_files_are_written_once on storage.objects;
create trigger documents_files_are_written_once
  before insert or update on storage.objects
  for each row
  when (new.bucket_id = 'documents')
  execute function private.documents_files_are_written_once();

drop trigger if exists documents_files_stay_in_their_bucket on storage.objects;
create trigger documents_files_stay_in_their_bucket
  before update on storage.objects
  for each row
  when (old.bucket_id = 'documents' and new.bucket_id is distinct from 'documents')
  execute function private.documents_files_are_written_once();
