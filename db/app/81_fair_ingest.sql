-- Quire: ingest workers are shared fairly between users.
--
-- Needs: 60_ingest.sql (private.ingest_jobs, the other ingest functions).
--
-- 60_ingest.sql's claim_ingest_job gave every worker the job that had
-- waited longest, so one user who queued many documents held every worker
-- of every companion until their queue was empty, and everyone else waited.
-- Here it takes `max_per_owner`: a job is claimed only while its owner holds
-- fewer live leases than that (the companion passes its worker count less
-- one, so one user never holds all of its workers), and among those, the
-- job of the owner holding the fewest leases comes first, then the one that
-- has waited longest. Claims are serialised (a transaction-level advisory
-- lock), so two workers claiming at once cannot both see an owner under
-- the cap. Everything else is as in 60_ingest.sql: `for update skip
-- locked`, the lease, `attempts`; executable by service_role only.

drop function if exists public.claim_ingest_job(text, integer);

create or replace function public.claim_ingest_job(
  worker text,
  lease_seconds integer,
  max_per_owner integer
)
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
  if coalesce(worker, '') = '' or coalesce(lease_seconds, 0) < 1 or coalesce(max_per_owner, 0) < 1 then
    raise exception 'claim_ingest_job needs a worker name, a positive lease and a positive max_per_owner'
      using errcode = '22023';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('quire.claim_ingest_job'));

  with live as (
    select d.owner_id, count(*) as leases
    from private.ingest_jobs l
    join public.documents d on d.id = l.document_id
    where l.finished_at is null and l.lease_until > pg_catalog.now()
    group by d.owner_id
  )
  select j.document_id into claimed
  from private.ingest_jobs j
  join public.documents d on d.id = j.document_id
  left join live on live.owner_id = d.owner_id
  where j.finished_at is null
    and j.not_before <= pg_catalog.now()
    and (j.lease_until is null or j.lease_until < pg_catalog.now())
    and coalesce(live.leases, 0) < claim_ingest_job.max_per_owner
  order by coalesce(live.leases, 0), j.not_before, j.created_at
  limit 1
  for update of j skip locked;
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

revoke all on function public.claim_ingest_job(text, integer, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.claim_ingest_job(text, integer, integer) to service_role;
