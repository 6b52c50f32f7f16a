-- Quire: the companion's ingestion queue, and the functions through which
-- the companion moves a document along and deletes it.
--
-- Needs: 10_documents.sql (public.documents, public.document_chunks; schema
-- `private` comes from 30_search.sql and is created here too if missing).
--
-- The companion reaches the database only through PostgREST
-- (POST /rest/v1/rpc/<fn>) with the service-role key, so everything it needs
-- beyond plain inserts is a function here. All of them are SECURITY INVOKER
-- (they run as service_role, which bypasses RLS on Powabase) and executable
-- by service_role only: no signed-in user can claim, advance or finish a job.
--
-- private.ingest_jobs  one row per document the companion was asked to
--                      ingest. The document's status (public.documents) is
--                      what users see; the job holds what only the companion
--                      needs: the lease, attempts, the knowledge-base entry,
--                      when to try again. Schema `private` is not exposed
--                      over PostgREST.
--
-- Leases. A companion claims one job at a time with claim_ingest_job
-- (`for update skip locked`, so two companions never get the same row) and
-- holds it for lease_seconds; it renews the lease while it works. Every
-- write a worker makes through these functions names the worker and is
-- refused with SQLSTATE PT409 (HTTP 409 through PostgREST) unless that
-- worker still holds an unexpired lease: a companion that stalled past its
-- lease cannot overwrite the work of the one that took over. A crashed
-- companion's lease simply expires, and the next claim resumes the job from
-- what it recorded (source_id, indexed_source_id, status).
--
-- attempts counts claims. A job is retried after transient failures (the
-- worker calls retry_ingest_job with a delay) and finished exactly once
-- (finish_ingest_job sets finished_at); queue_ingest re-opens a finished
-- job only when its document is `failed` (a person asked to retry).

create schema if not exists private;
grant usage on schema private to service_role;

create table if not exists private.ingest_jobs (
  document_id uuid primary key references public.documents (id) on delete cascade,
  -- ai.indexed_sources.id of the document's source in the companion's
  -- knowledge base, once added (documents.source_id holds the source).
  indexed_source_id uuid,
  lease_owner text check (char_length(lease_owner) <= 200),
  lease_until timestamptz,
  attempts integer not null default 0 check (attempts >= 0),
  not_before timestamptz not null default now(),
  last_error text,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists ingest_jobs_runnable_idx
  on private.ingest_jobs (not_before, created_at) where finished_at is null;

alter table private.ingest_jobs enable row level security;
revoke all on private.ingest_jobs from public, anon, authenticated, service_role;
grant select, insert, update, delete on private.ingest_jobs to service_role;

-- Raises PT409 unless `worker` holds the job's lease. Internal.
create or replace function private.require_ingest_lease(document_id uuid, worker text)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform 1
  from private.ingest_jobs j
  where j.document_id = require_ingest_lease.document_id
    and j.lease_owner = require_ingest_lease.worker
    and j.lease_until > pg_catalog.now()
    and j.finished_at is null
  for update;
  if not found then
    raise exception 'ingest lease lost for document %', require_ingest_lease.document_id
      using errcode = 'PT409', hint = 'another companion holds the job, or it was finished or deleted';
  end if;
end;
$$;
revoke all on function private.require_ingest_lease(uuid, text) from public, anon, authenticated, service_role;
grant execute on function private.require_ingest_lease(uuid, text) to service_role;

-- After the client's Storage upload: the document becomes `stored` and its
-- job runnable. Idempotent: a document already past `uploading` keeps its
-- status and job; a `failed` one is queued again. Returns the status, or
-- NULL when the document does not exist.
create or replace function public.queue_ingest(document_id uuid)
returns text
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  current_status text;
begin
  select d.status into current_status
  from public.documents d
  where d.id = queue_ingest.document_id
  for update;
  if not found then
    return null;
  end if;
  if current_status not in ('uploading', 'failed') then
    return current_status;
  end if;

  update public.documents d
  set status = 'stored', error = null,
      source_id = case when current_status = 'failed' then null else d.source_id end
  where d.id = queue_ingest.document_id;

  insert into private.ingest_jobs as j (document_id)
  values (queue_ingest.document_id)
  on conflict (document_id) do update
    set indexed_source_id = null, lease_owner = null, lease_until = null, attempts = 0,
        not_before = pg_catalog.now(), last_error = null, finished_at = null,
        updated_at = pg_catalog.now();
  return 'stored';
end;
$$;

-- Claims the runnable job that has waited longest, for `lease_seconds`.
-- Returns no row when there is none.
create or replace function public.claim_ingest_job(worker text, lease_seconds integer)
returns table (
  document_id uuid,
  owner_id uuid,
  storage_path text,
  title text,
  byte_size bigint,
  status text,
  source_id uuid,
  indexed_source_id uuid,
  attempts integer
)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  claimed uuid;
begin
  if coalesce(worker, '') = '' or coalesce(lease_seconds, 0) < 1 then
    raise exception 'claim_ingest_job needs a worker name and a positive lease'
      using errcode = '22023';
  end if;

  select j.document_id into claimed
  from private.ingest_jobs j
  where j.finished_at is null
    and j.not_before <= pg_catalog.now()
    and (j.lease_until is null or j.lease_until < pg_catalog.now())
  order by j.not_before, j.created_at
  limit 1
  for update skip locked;
  if claimed is null then
    return;
  end if;

  update private.ingest_jobs j
  set lease_owner = claim_ingest_job.worker,
      lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => claim_ingest_job.lease_seconds),
      attempts = j.attempts + 1,
      updated_at = pg_catalog.now()
  where j.document_id = claimed;

  return query
    select d.id, d.owner_id, d.storage_path, d.title, d.byte_size, d.status, d.source_id,
           j.indexed_source_id, j.attempts
    from public.documents d
    join private.ingest_jobs j on j.document_id = d.id
    where d.id = claimed;
end;
$$;

-- Extends the lease of a job the worker holds. PT409 if it does not.
create or replace function public.renew_ingest_lease(document_id uuid, worker text, lease_seconds integer)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform private.require_ingest_lease(renew_ingest_lease.document_id, renew_ingest_lease.worker);
  update private.ingest_jobs j
  set lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => renew_ingest_lease.lease_seconds),
      updated_at = pg_catalog.now()
  where j.document_id = renew_ingest_lease.document_id;
end;
$$;

-- Records a step: the document's status (`extracting` or `indexing`), its
-- platform source, its knowledge-base entry, its page count. NULL leaves a
-- value as it is; forget_source clears source_id and indexed_source_id (the
-- source vanished and must be uploaded again). PT409 without the lease.
create or replace function public.record_ingest_step(
  document_id uuid,
  worker text,
  status text default null,
  source_id uuid default null,
  indexed_source_id uuid default null,
  page_count integer default null,
  forget_source boolean default false
)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if record_ingest_step.status is not null
     and record_ingest_step.status not in ('stored', 'extracting', 'indexing') then
    raise exception 'record_ingest_step: % is not an intermediate status', record_ingest_step.status
      using errcode = '22023';
  end if;
  perform private.require_ingest_lease(record_ingest_step.document_id, record_ingest_step.worker);

  update public.documents d
  set status = coalesce(record_ingest_step.status, d.status),
      source_id = case when record_ingest_step.forget_source then null
                       else coalesce(record_ingest_step.source_id, d.source_id) end,
      page_count = coalesce(record_ingest_step.page_count, d.page_count)
  where d.id = record_ingest_step.document_id;

  update private.ingest_jobs j
  set indexed_source_id = case when record_ingest_step.forget_source then null
                               else coalesce(record_ingest_step.indexed_source_id, j.indexed_source_id) end,
      updated_at = pg_catalog.now()
  where j.document_id = record_ingest_step.document_id;
end;
$$;

-- Copies platform chunks into the document's owner's retrieval index.
-- `chunks` is a JSON array of {chunk_id, page, page_end, ordinal, text}
-- (page and page_end: the first and last page the chunk spans, or null);
-- rows already copied are skipped, so a resumed job copies nothing twice.
-- Returns the number of rows inserted. PT409 without the lease.
create or replace function public.copy_ingest_chunks(document_id uuid, worker text, chunks jsonb)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_column
declare
  inserted integer;
begin
  perform private.require_ingest_lease(copy_ingest_chunks.document_id, copy_ingest_chunks.worker);
  if pg_catalog.jsonb_typeof(copy_ingest_chunks.chunks) is distinct from 'array' then
    raise exception 'copy_ingest_chunks: chunks must be a JSON array' using errcode = '22023';
  end if;

  insert into public.document_chunks (owner_id, document_id, chunk_id, page, page_end, ordinal, text)
  select d.owner_id, d.id, (c->>'chunk_id')::uuid, (c->>'page')::integer,
         (c->>'page_end')::integer, (c->>'ordinal')::integer, c->>'text'
  from public.documents d
  cross join lateral pg_catalog.jsonb_array_elements(copy_ingest_chunks.chunks) c
  where d.id = copy_ingest_chunks.document_id
  on conflict (document_id, chunk_id) do nothing;
  get diagnostics inserted = row_count;
  return inserted;
end;
$$;

-- Puts a job back in the queue after a transient failure: the lease is
-- released and the job becomes claimable after `delay_seconds`.
-- PT409 without the lease.
create or replace function public.retry_ingest_job(
  document_id uuid,
  worker text,
  delay_seconds integer,
  error text
)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform private.require_ingest_lease(retry_ingest_job.document_id, retry_ingest_job.worker);
  update private.ingest_jobs j
  set lease_owner = null, lease_until = null,
      not_before = pg_catalog.now() + pg_catalog.make_interval(secs => greatest(retry_ingest_job.delay_seconds, 0)),
      last_error = retry_ingest_job.error,
      updated_at = pg_catalog.now()
  where j.document_id = retry_ingest_job.document_id;
end;
$$;

-- Ends a job: the document becomes `ready`, `no_text` or `failed` (with an
-- error a person can act on), the lease is released. PT409 without the lease.
create or replace function public.finish_ingest_job(
  document_id uuid,
  worker text,
  status text,
  error text default null,
  page_count integer default null
)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if finish_ingest_job.status not in ('ready', 'no_text', 'failed') then
    raise exception 'finish_ingest_job: % is not a final status', finish_ingest_job.status
      using errcode = '22023';
  end if;
  perform private.require_ingest_lease(finish_ingest_job.document_id, finish_ingest_job.worker);

  update public.documents d
  set status = finish_ingest_job.status,
      error = case when finish_ingest_job.status = 'failed' then finish_ingest_job.error end,
      page_count = coalesce(finish_ingest_job.page_count, d.page_count)
  where d.id = finish_ingest_job.document_id;

  update private.ingest_jobs j
  set lease_owner = null, lease_until = null, finished_at = pg_catalog.now(),
      last_error = finish_ingest_job.error, updated_at = pg_catalog.now()
  where j.document_id = finish_ingest_job.document_id;
end;
$$;

-- Deletes `owner_id`'s document (its chunks and job go with it) and says
-- what the companion must clean up on the platform: the Storage object, and
-- the source and its knowledge-base entry unless another document still
-- uses that source. No row when there is no such document of that owner.
create or replace function public.delete_document(document_id uuid, owner_id uuid)
returns table (
  storage_path text,
  source_id uuid,
  indexed_source_id uuid,
  source_still_used boolean
)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  gone public.documents;
  entry uuid;
begin
  select j.indexed_source_id into entry
  from private.ingest_jobs j
  where j.document_id = delete_document.document_id;

  delete from public.documents d
  where d.id = delete_document.document_id and d.owner_id = delete_document.owner_id
  returning d.* into gone;
  if gone.id is null then
    return;
  end if;

  return query
    select gone.storage_path, gone.source_id, entry,
           gone.source_id is not null and exists (
             select 1 from public.documents o where o.source_id = gone.source_id
           );
end;
$$;

do $$
declare
  fn text;
begin
  foreach fn in array array[
    'public.queue_ingest(uuid)',
    'public.claim_ingest_job(text, integer)',
    'public.renew_ingest_lease(uuid, text, integer)',
    'public.record_ingest_step(uuid, text, text, uuid, uuid, integer, boolean)',
    'public.copy_ingest_chunks(uuid, text, jsonb)',
    'public.retry_ingest_job(uuid, text, integer, text)',
    'public.finish_ingest_job(uuid, text, text, text, integer)',
    'public.delete_document(uuid, uuid)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
