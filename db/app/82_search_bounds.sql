-- Quire: a search costs the same whatever a signed-in user sends.
--
-- Needs: 30_search.sql (private.rank_own_chunks, public.search_chunks).
--
-- search_chunks is an RPC every signed-in user may call with any body
-- PostgREST accepts (16 MiB through the gateway), and its cost grows with
-- the query: every word becomes a lexeme of ten languages' queries and of
-- the pattern matched as typed, and every lexeme an index lookup and a
-- ranking term. So, here, inside the function (callers need not be
-- trusted to cut):
--  * the query is searched by its first 1,000 characters, and of those by
--    its first words up to 64 lexemes (a word counts its words as
--    PostgreSQL's parser splits them — `e-mail` is three — plus one per CJK
--    character, each of which starts a character pair). A word that alone
--    has more is cut to its first 64 characters. A question longer than
--    that is searched by its beginning;
--  * document_ids may name at most 1,000 documents (the most a user may
--    have, 83_per_user_limits.sql); more is refused with SQLSTATE 22023
--    (HTTP 400 through PostgREST).
-- A statement that still runs long is cut by the role's statement_timeout
-- (00_prerequisites.sql: 8 s for `authenticated`).

-- The part of `q` that is searched (see above); whitespace between words
-- becomes one space, which the matching ignores anyway.
create or replace function private.search_query(q text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
declare
  word text;
  kept text[] := '{}';
  lexemes integer := 0;
  n integer;
begin
  foreach word in array pg_catalog.regexp_split_to_array(
      pg_catalog.btrim(pg_catalog.left(q, 1000), E' \t\r\n'), '\s+')
  loop
    n := pg_catalog.length(pg_catalog.to_tsvector('pg_catalog.simple', word))
       + pg_catalog.length(pg_catalog.regexp_replace(word,
           '[^\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]', '', 'g'));
    if lexemes + n > 64 then
      if pg_catalog.cardinality(kept) = 0 then
        kept := array[pg_catalog.left(word, 64)];
      end if;
      exit;
    end if;
    kept := kept || word;
    lexemes := lexemes + n;
  end loop;
  return pg_catalog.array_to_string(kept, ' ');
end;
$$;

-- `document_ids`, or SQLSTATE 22023 when it names more than 1,000.
create or replace function private.search_document_ids(document_ids uuid[])
returns uuid[]
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
  if pg_catalog.cardinality(document_ids) > 1000 then
    raise exception 'search_chunks: at most 1000 document ids, not %', pg_catalog.cardinality(document_ids)
      using errcode = '22023';
  end if;
  return document_ids;
end;
$$;

revoke all on function private.search_query(text), private.search_document_ids(uuid[])
  from public, anon, authenticated, service_role;
grant execute on function private.search_query(text), private.search_document_ids(uuid[])
  to authenticated;

-- As in 30_search.sql, with the query and the document ids bounded first.
create or replace function public.search_chunks(
  query text,
  match_count integer default 8,
  document_ids uuid[] default null
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
language sql
stable
security invoker
set search_path = ''
as $$
  select c.id, c.document_id, c.chunk_id, d.title, c.page, coalesce(c.page_end, c.page), c.text, h.score
  from private.rank_own_chunks(private.search_query(query), match_count,
                               private.search_document_ids(document_ids)) h
  -- One primary-key lookup per hit. OFFSET 0 keeps the planner from turning
  -- this into a join that reads every chunk the caller owns.
  cross join lateral (
    select c.* from public.document_chunks c where c.id = h.id offset 0
  ) c
  join public.documents d on d.id = c.document_id and d.owner_id = c.owner_id
  where d.status = 'ready'
  order by h.score desc, c.document_id, c.ordinal
$$;

revoke all on function public.search_chunks(text, integer, uuid[])
  from public, anon, authenticated, service_role;
grant execute on function public.search_chunks(text, integer, uuid[]) to authenticated;
