-- Quire: documents whose upload was cut and that nothing will finish are
-- deleted (issue 17, item 6).
--
-- Needs: 10_documents.sql (public.documents), 40_realtime.sql (deleting a
-- row broadcasts 'document_deleted' to the owner's devices).
--
-- A document stays `uploading` while a device sends its file. One that has
-- not changed for `older_than_seconds` (the companion's
-- QUIRE_COMPANION_STALE_UPLOAD_SECS, a day by default: far past the
-- in-flight hour of 83_per_user_limits.sql) was cut, and no device is
-- sending it any more. delete_stale_uploads deletes at most `max_rows` of
-- them, oldest first, in one statement, and returns their object keys: the
-- companion deletes those objects from Storage (the Storage API, not SQL,
-- removes the stored bytes). Rows another transaction holds are skipped
-- (`for update skip locked`), so two companions never wait on each other.
-- Service role only.

create or replace function public.delete_stale_uploads(older_than_seconds integer, max_rows integer)
returns table (document_id uuid, storage_path text)
language sql
security invoker
set search_path = ''
as $$
  with stale as (
    select d.id
    from public.documents d
    where d.status = 'uploading'
      and d.updated_at < pg_catalog.now() - pg_catalog.make_interval(secs => older_than_seconds)
    order by d.updated_at
    limit greatest(max_rows, 0)
    for update skip locked
  )
  delete from public.documents d
  using stale
  where d.id = stale.id
  returning d.id, d.storage_path;
$$;

revoke all on function public.delete_stale_uploads(integer, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.delete_stale_uploads(integer, integer) to service_role;
