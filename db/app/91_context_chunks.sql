-- Quire: the chunks a question names, with their documents' titles, in one
-- request (issue 18). The companion re-reads the chunk ids a client sent
-- under the user's own token (ARCHITECTURE.md, invariant 4); it made two
-- requests for that, the chunks and then their documents' titles.
--
-- Needs: 10_documents.sql (public.document_chunks, public.documents and
-- their owners' policies).
--
-- context_chunks(ids)  the caller's chunks among `ids` (at most 1000), each
--                      with its document's title; SECURITY INVOKER, so the
--                      owners' policies decide: ids of anyone else's chunks
--                      return nothing, exactly as unknown ids. Any order:
--                      the companion keeps the client's.

create or replace function public.context_chunks(ids uuid[])
returns table (
  id uuid,
  document_id uuid,
  chunk_id uuid,
  page integer,
  page_end integer,
  text text,
  title text
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  if pg_catalog.cardinality(context_chunks.ids) > 1000 then
    raise exception 'context_chunks: at most 1000 ids, not %', pg_catalog.cardinality(context_chunks.ids)
      using errcode = '22023';
  end if;
  return query
  select c.id, c.document_id, c.chunk_id, c.page, c.page_end, c.text, d.title
  from public.document_chunks c
  join public.documents d on d.id = c.document_id and d.owner_id = c.owner_id
  where c.id = any (context_chunks.ids);
end;
$$;

revoke all on function public.context_chunks(uuid[]) from public, anon, authenticated, service_role;
grant execute on function public.context_chunks(uuid[]) to authenticated;
