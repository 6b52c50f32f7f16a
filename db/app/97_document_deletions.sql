-- Quire: a deleted document's file and platform source are deleted too,
-- however its row went (issue 14, item 9).
--
-- Needs: 10_documents.sql (public.documents and its source_id index),
-- 60_ingest.sql (public.delete_document), 96_stale_uploads.sql
-- (public.delete_stale_uploads). The same pattern as 70_session_outbox.sql.
--
-- A document lives in three places: its row (public.documents), its file in
-- Storage (bucket `documents`, key storage_path) and its platform source
-- (documents.source_id, with the source's entry and chunks in Quire's
-- knowledge base). The owner may delete the row directly through PostgREST
-- (policy owner_deletes_own_documents, 10_documents.sql), and deleting a
-- user account deletes their rows by the foreign key's cascade; neither
-- reaches the companion, so until now both left the file and the source
-- behind. So the database records every deletion, not the client: an
-- AFTER DELETE trigger writes (document, owner, storage_path, source_id)
-- into an outbox, and the companion drains it
-- (crates/companion/src/deletions.rs): it deletes the Storage object with
-- the service key, then the source (DELETE /api/sources/{id}) unless
-- another document still uses it, then forgets the entry; a 404 from
-- either counts as done.
--
-- Decisions:
--  * One path for every deletion. The companion's own DELETE
--    /api/documents/{id} and the stale-upload sweep (96_stale_uploads.sql)
--    only delete the row now, and the drain cleans up after them as after
--    anyone else. Simpler than two cleaners of the same objects racing each
--    other, and correct whatever order things fail in: the row goes first
--    and the outbox entry goes with it in one transaction, and the entry
--    stays until the platform confirms (or a 404 shows) each object gone.
--  * A source may be shared: the platform keeps one source per sha256
--    across the project (docs/platform/ai-api.md §7.2), so documents of the
--    same bytes have the same source_id: one user's copies of a file (the
--    companion marks each file with its owner, crates/companion/src/ingest.rs),
--    and two users' copies ingested before it did. So a source is deleted
--    only when no remaining document, anyone's, references it, and that is
--    decided when the entry is drained, not when the row is deleted
--    (source_still_used below): a document sharing it may have been deleted
--    meanwhile, and then the last one out deletes it.
--  * The source, not its knowledge-base entry: deleting a source deletes its
--    entries and their chunks with it (ai.indexed_sources and ai.chunks
--    reference ai.sources `on delete cascade`, db/platform/40_ai.sql; the
--    sandbox's DELETE /api/sources/{id} says so in its answer). The
--    entry's id lived in private.ingest_jobs, whose row is already gone by
--    the cascade when this trigger runs.
--  * SECURITY DEFINER trigger, search_path = '': a user deleting their own
--    row cannot write the outbox themselves (no grant, schema `private` not
--    exposed), but their delete must still enqueue. What it records comes
--    from the deleted row alone, and storage_path is generated from the
--    row's owner and id (10_documents.sql), so a user can enqueue only the
--    file and source of a document that was theirs.
--
-- private.document_deletions  the outbox; service_role only.

create schema if not exists private;
grant usage on schema private to service_role;

create table if not exists private.document_deletions (
  document_id uuid primary key,
  owner_id uuid not null,
  storage_path text not null check (char_length(storage_path) <= 1024),
  source_id uuid,
  attempts integer not null default 0 check (attempts >= 0),
  created_at timestamptz not null default now()
);
create index if not exists document_deletions_created_at_idx
  on private.document_deletions (created_at);

alter table private.document_deletions enable row level security;
revoke all on private.document_deletions from public, anon, authenticated, service_role;
grant select, insert, update, delete on private.document_deletions to service_role;

create or replace function private.enqueue_document_deletion()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.document_deletions (document_id, owner_id, storage_path, source_id)
  values (old.id, old.owner_id, old.storage_path, old.source_id)
  on conflict (document_id) do nothing;
  return null;
end;
$$;
revoke all on function private.enqueue_document_deletion() from public, anon, authenticated;

drop trigger if exists documents_enqueue_deletion on public.documents;
create trigger documents_enqueue_deletion
  after delete on public.documents
  for each row execute function private.enqueue_document_deletion();

-- Up to `max_count` deletions to carry out, oldest first; each call counts
-- an attempt, so one the platform keeps refusing is visible in the table.
-- source_still_used: another document (anyone's) has the same source now.
-- Fewest attempts first, so rows that keep failing (each pick counts one)
-- never hold up deletions that came after them.
create or replace function public.pending_document_deletions(max_count integer default 50)
returns table (
  document_id uuid,
  owner_id uuid,
  storage_path text,
  source_id uuid,
  source_still_used boolean
)
language sql
security invoker
set search_path = ''
as $$
  with picked as (
    update private.document_deletions d
       set attempts = d.attempts + 1
     where d.document_id in (
       select p.document_id from private.document_deletions p
       order by p.attempts, p.created_at
       limit greatest(1, least(pending_document_deletions.max_count, 500))
       for update skip locked)
    returning d.document_id, d.owner_id, d.storage_path, d.source_id, d.created_at
  )
  select p.document_id, p.owner_id, p.storage_path, p.source_id,
         p.source_id is not null and exists (
           select 1 from public.documents o where o.source_id = p.source_id)
  from picked p
  order by p.created_at;
$$;

-- The file and the source (unless still used) are gone.
create or replace function public.forget_document_deletion(document_id uuid)
returns void
language sql
security invoker
set search_path = ''
as $$
  delete from private.document_deletions d
   where d.document_id = forget_document_deletion.document_id;
$$;

do $$
declare
  fn text;
begin
  foreach fn in array array[
    'public.pending_document_deletions(integer)',
    'public.forget_document_deletion(uuid)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
