-- Quire: search_chunks, the user-scoped retrieval the client calls as
-- POST /rest/v1/rpc/search_chunks under the user's JWT.
--
-- Needs: 00_prerequisites.sql (pg_trgm in schema `extensions`),
-- 10_documents.sql.
--
-- Two functions, because of how RLS and indexes meet:
--
-- private.rank_own_chunks  SECURITY DEFINER. Finds the best chunks of the
--   caller (`owner_id = auth.uid()`, never a parameter) in `ready`
--   documents and returns their ids and scores. It exists only so that the
--   text predicates can use their indexes: under RLS, Postgres may not use a
--   predicate whose operator is not LEAKPROOF (`@@`, `%>` are not) as an
--   index condition ahead of the policy, so an invoker's search could only
--   walk all of the user's chunks and filter. Inside, the planner combines
--   the owner index with the GIN fts (or trigram) index. Schema `private` is
--   not exposed over PostgREST.
-- public.search_chunks     SECURITY INVOKER, the RPC. Re-reads the ranked
--   ids from document_chunks and documents as the caller, so RLS still
--   decides what is returned: were rank_own_chunks ever wrong, the policies
--   would drop every row that is not the caller's.
--
-- Ranking, in three stages; the first that finds anything answers:
--  1. full text, every word (`websearch_to_tsquery('english', query)`,
--     so quotes and -exclusions work), ranked by ts_rank_cd;
--  2. trigram word similarity of the whole query (`%>` at threshold 0.4;
--     pg_trgm's default 0.6 misses most one-letter typos), ranked by
--     word_similarity: misspellings and fragments of words;
--  3. full text, any word, ranked by ts_rank_cd: questions phrased with
--     words the text does not use ("Is my dog allowed in the flat?" finding
--     "Pets are allowed with the landlord's written consent").
-- `score` is the rank of the stage that answered; scales differ by stage.
-- A query with an exclusion (`-word`) stops after stage 1: the fuzzy stages
-- would ignore the exclusion.
--
-- match_count is clamped to 1..50 (NULL means the default, 8);
-- document_ids, when given, restricts the search to those documents.
-- Executable by `authenticated` only (anon and service_role get
-- permission denied); a caller without a `sub` gets nothing.
-- Each hit's page..page_end is the range of pages its chunk spans
-- (page_end = page for one page; both NULL when the pages are unknown).

create schema if not exists private;
revoke all on schema private from public, anon;
grant usage on schema private to authenticated;

create or replace function private.rank_own_chunks(
  query text,
  match_count integer,
  document_ids uuid[]
)
returns table (id uuid, score real)
language plpgsql
stable
security definer
set search_path = ''
set pg_trgm.word_similarity_threshold = 0.4
rows 50
as $$
#variable_conflict use_column
declare
  caller uuid := auth.uid();
  wanted integer := least(greatest(coalesce(match_count, 8), 1), 50);
  words tsquery := websearch_to_tsquery('english', coalesce(query, ''));
  -- NULL when the query has no lexeme at all.
  any_word tsquery := (
    select string_agg(quote_literal(l), ' | ')::tsquery
    from unnest(tsvector_to_array(to_tsvector('english', coalesce(query, '')))) l
  );
begin
  if caller is null or coalesce(query, '') = '' then
    return;
  end if;

  if numnode(words) > 0 then
    -- The caller's matching chunks first (owner and fts indexes), then their
    -- documents: joining documents first makes the planner walk every chunk
    -- of every document and filter.
    return query
      with hits as materialized (
        select c.id, c.document_id, c.ordinal, ts_rank_cd(c.fts, words) as rank
        from public.document_chunks c
        where c.owner_id = caller
          and c.fts @@ words
          and (document_ids is null or c.document_id = any (document_ids))
      )
      select h.id, h.rank
      from hits h
      join public.documents d on d.id = h.document_id and d.owner_id = caller
      where d.status = 'ready'
      order by h.rank desc, h.document_id, h.ordinal
      limit wanted;
    -- An explicit exclusion (`-word`) is a precise request: the fuzzy
    -- stages would ignore it.
    if found or words::text like '%!%' then
      return;
    end if;
  end if;

  return query
    with hits as materialized (
      select c.id, c.document_id, c.ordinal,
             extensions.word_similarity(query, c.text) as rank
      from public.document_chunks c
      where c.owner_id = caller
        and c.text operator(extensions.%>) query
        and (document_ids is null or c.document_id = any (document_ids))
    )
    select h.id, h.rank
    from hits h
    join public.documents d on d.id = h.document_id and d.owner_id = caller
    where d.status = 'ready'
    order by h.rank desc, h.document_id, h.ordinal
    limit wanted;
  if found or any_word is null then
    return;
  end if;

  return query
    with hits as materialized (
      select c.id, c.document_id, c.ordinal, ts_rank_cd(c.fts, any_word) as rank
      from public.document_chunks c
      where c.owner_id = caller
        and c.fts @@ any_word
        and (document_ids is null or c.document_id = any (document_ids))
    )
    select h.id, h.rank
    from hits h
    join public.documents d on d.id = h.document_id and d.owner_id = caller
    where d.status = 'ready'
    order by h.rank desc, h.document_id, h.ordinal
    limit wanted;
end;
$$;

revoke all on function private.rank_own_chunks(text, integer, uuid[])
  from public, anon, authenticated, service_role;
grant execute on function private.rank_own_chunks(text, integer, uuid[]) to authenticated;

-- `create or replace` cannot change a function's result columns (page_end
-- was added), so an existing one is dropped first; the grant follows below.
drop function if exists public.search_chunks(text, integer, uuid[]);
create function public.search_chunks(
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
  from private.rank_own_chunks(query, match_count, document_ids) h
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
