-- Quire: documents and the user-scoped retrieval index.
--
-- Needs: 00_prerequisites.sql (Powabase auth schema, pg_trgm in `extensions`).
--
-- public.documents       one row per uploaded file per user. The owner reads
--                        and deletes; only the companion (service role)
--                        inserts and moves the status along.
-- public.document_chunks the owner's copy of the platform chunks of their
--                        documents, made by the companion once the knowledge
--                        base has indexed the source. The owner reads; only
--                        the companion writes. page..page_end are the first
--                        and last of the pages the chunk spans (the
--                        platform's meta.pages): a chunk may cross a page
--                        break. Both NULL when the platform knew no pages;
--                        page_end NULL on rows copied before it existed
--                        (read it as page). `fts_multilingual`, the
--                        other languages' index, is added by
--                        30_search.sql with the functions it needs.
--
-- Decisions the design leaves open:
--  * storage_path is generated from owner and id ('<owner>/<id>.pdf', the
--    object key in bucket `documents`), so it cannot disagree with them.
--  * documents.source_id has no foreign key: ai.sources belongs to the
--    platform and is shared by every user who uploads the same bytes.
--  * document_chunks carries (document_id, owner_id) as a foreign key to
--    documents (id, owner_id): a chunk always belongs to its document's owner,
--    whatever the writer sends. unique (document_id, chunk_id) makes the
--    companion's copy idempotent (`on conflict do nothing`).
--  * Deleting a document (owner or companion) deletes its chunks; the stored
--    object and the platform source are the companion's to clean up.

create or replace function public.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;
revoke all on function public.set_updated_at() from public, anon, authenticated, service_role;

create table if not exists public.documents (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users (id) on delete cascade,
  title text not null check (char_length(title) between 1 and 1024),
  storage_path text generated always as (owner_id::text || '/' || id::text || '.pdf') stored,
  source_id uuid,
  byte_size bigint not null check (byte_size >= 0),
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  page_count integer check (page_count >= 0),
  status text not null default 'uploading'
    check (status in ('uploading', 'stored', 'extracting', 'indexing', 'ready', 'failed', 'no_text')),
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, owner_id)
);
create index if not exists documents_owner_id_idx on public.documents (owner_id);
create index if not exists documents_source_id_idx on public.documents (source_id);

drop trigger if exists documents_set_updated_at on public.documents;
create trigger documents_set_updated_at
  before update on public.documents
  for each row execute function public.set_updated_at();

create table if not exists public.document_chunks (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users (id) on delete cascade,
  document_id uuid not null,
  -- ai.chunks.id: shared by every user with the same source.
  chunk_id uuid not null,
  page integer check (page >= 1),
  ordinal integer not null check (ordinal >= 0),
  text text not null,
  fts tsvector generated always as (to_tsvector('english', text)) stored,
  foreign key (document_id, owner_id) references public.documents (id, owner_id) on delete cascade,
  unique (document_id, chunk_id)
);
-- Added after the table first shipped, so it is added here rather than in
-- `create table` (these files are applied again to existing databases).
alter table public.document_chunks
  add column if not exists page_end integer
    constraint document_chunks_page_end_check
    check (page_end is null or (page is not null and page_end >= page));
create index if not exists document_chunks_owner_id_document_id_idx
  on public.document_chunks (owner_id, document_id);
create index if not exists document_chunks_fts_idx
  on public.document_chunks using gin (fts);
create index if not exists document_chunks_text_trgm_idx
  on public.document_chunks using gin (text extensions.gin_trgm_ops);

alter table public.documents enable row level security;
alter table public.document_chunks enable row level security;

drop policy if exists owner_reads_own_documents on public.documents;
create policy owner_reads_own_documents on public.documents
  for select to authenticated
  using (owner_id = (select auth.uid()));

drop policy if exists owner_deletes_own_documents on public.documents;
create policy owner_deletes_own_documents on public.documents
  for delete to authenticated
  using (owner_id = (select auth.uid()));

drop policy if exists owner_reads_own_document_chunks on public.document_chunks;
create policy owner_reads_own_document_chunks on public.document_chunks
  for select to authenticated
  using (owner_id = (select auth.uid()));

-- Explicit grants: Supabase-style projects may auto-expose new tables to the
-- API roles, so take everything away first and give back what the policies
-- are for.
revoke all on public.documents, public.document_chunks from public, anon, authenticated, service_role;
grant select, delete on public.documents to authenticated;
grant select on public.document_chunks to authenticated;
grant all on public.documents, public.document_chunks to service_role;
