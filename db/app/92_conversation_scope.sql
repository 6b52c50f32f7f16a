-- Quire: a conversation limited to some of its owner's documents (issue 17,
-- item 1: "ask about chosen documents").
--
-- Needs: 10_documents.sql (public.documents), 20_conversations.sql
-- (public.conversations and its grants).
--
-- conversations.document_ids  the documents the conversation asks about; empty
--                             means all of the owner's documents, as before.
--                             Clients search with it (search_chunks's
--                             document_ids); the companion re-reads it under
--                             the user's token, keeps only the chunks a client
--                             sent that lie in it, and its search tool searches
--                             only in it (ARCHITECTURE.md, invariant 4).
--
-- Decisions:
--  * Owners may set it, on insert and on update: 20_conversations.sql lets
--    them write only (id, owner_id, title) and (title, archived_at); this
--    adds document_ids to both, and nothing else.
--  * Every id must name a document of the conversation's owner, however the
--    row is written (a trigger, SECURITY DEFINER so that it sees the owner's
--    documents whoever writes): SQLSTATE 23503 (HTTP 409 through PostgREST),
--    the same answer for another user's document as for none. The documents
--    are locked (`for key share`) until the write commits, so a document
--    deleted meanwhile waits, then leaves the scope below.
--  * Deleting a document drops it from its owner's scopes (a trigger); a
--    scope whose last document is deleted becomes empty: all documents.
--  * search_conversation_chunks(query, conversation_id, match_count) is
--    search_chunks in the conversation's scope, read in the same statement
--    (one request for a client or the companion's search tool). SECURITY
--    INVOKER: the caller's policies decide, and a conversation that is not
--    theirs is SQLSTATE PT404 (HTTP 404), as one that does not exist.
--  * Ids are kept once each, in the order given; at most 1,000 (the most
--    documents a user may have, and what search_chunks accepts).

alter table public.conversations
  add column if not exists document_ids uuid[] not null default '{}'
    check (pg_catalog.cardinality(document_ids) <= 1000
           and pg_catalog.array_position(document_ids, null) is null);

create or replace function private.check_conversation_scope()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  wanted uuid[];
  found integer;
begin
  select coalesce(pg_catalog.array_agg(d.id order by d.first), '{}')
    into wanted
  from (
    select u.id, pg_catalog.min(u.n) as first
    from pg_catalog.unnest(new.document_ids) with ordinality as u (id, n)
    group by u.id
  ) d;
  new.document_ids := wanted;
  if pg_catalog.cardinality(wanted) = 0 then
    return new;
  end if;
  select pg_catalog.count(*) into found
  from (
    select 1
    from public.documents doc
    where doc.id = any (wanted) and doc.owner_id = new.owner_id
    for key share
  ) own;
  if found <> pg_catalog.cardinality(wanted) then
    raise exception 'a conversation can be limited only to its owner''s documents'
      using errcode = '23503', hint = 'not_own_document';
  end if;
  return new;
end;
$$;
revoke all on function private.check_conversation_scope() from public, anon, authenticated, service_role;

drop trigger if exists conversations_check_scope on public.conversations;
create trigger conversations_check_scope
  before insert or update of document_ids on public.conversations
  for each row execute function private.check_conversation_scope();

create or replace function private.drop_document_from_scopes()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.conversations c
  set document_ids = pg_catalog.array_remove(c.document_ids, old.id)
  where c.owner_id = old.owner_id and c.document_ids operator(pg_catalog.@>) array[old.id];
  return null;
end;
$$;
revoke all on function private.drop_document_from_scopes() from public, anon, authenticated, service_role;

drop trigger if exists documents_drop_from_scopes on public.documents;
create trigger documents_drop_from_scopes
  after delete on public.documents
  for each row execute function private.drop_document_from_scopes();

grant insert (document_ids) on public.conversations to authenticated;
grant update (document_ids) on public.conversations to authenticated;

create or replace function public.search_conversation_chunks(
  query text,
  conversation_id uuid,
  match_count integer default 8
)
returns table (
  id uuid,
  document_id uuid,
  chunk_id uuid,
  title text,
  page integer,
  page_end integer,
  text text,
  score real
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  scope uuid[];
begin
  select c.document_ids into scope
  from public.conversations c
  where c.id = search_conversation_chunks.conversation_id;
  if not found then
    raise exception 'no such conversation'
      using errcode = 'PT404', hint = 'conversation_not_found';
  end if;
  return query
  select * from public.search_chunks(search_conversation_chunks.query,
                                     search_conversation_chunks.match_count,
                                     case when pg_catalog.cardinality(scope) > 0 then scope end);
end;
$$;

revoke all on function public.search_conversation_chunks(text, uuid, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.search_conversation_chunks(text, uuid, integer) to authenticated;
