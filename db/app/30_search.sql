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
--   predicate whose operator is not LEAKPROOF (`@@`, `%>`, `~*` are not) as
--   an index condition ahead of the policy, so an invoker's search could
--   only walk all of the user's chunks and filter. Inside, the planner
--   combines the owner index with the GIN fts, multilingual and trigram
--   indexes. Schema `private` is not exposed over PostgREST.
-- public.search_chunks     SECURITY INVOKER, the RPC. Re-reads the ranked
--   ids from document_chunks and documents as the caller, so RLS still
--   decides what is returned: were rank_own_chunks ever wrong, the policies
--   would drop every row that is not the caller's.
--
-- Languages. A chunk's language is not known in advance, so every chunk is
-- indexed several ways at once: `fts` (English stemming, 10_documents.sql)
-- and `fts_multilingual` (below): the words as written; Russian, Greek and
-- Arabic stems; the stems of the chunk's own language when it is German,
-- French, Spanish, Italian, Portuguese or Dutch (told by its stop words);
-- and the overlapping character pairs of every run of Chinese, Japanese or
-- Korean characters, which are written without spaces (PostgreSQL's parser
-- takes a whole clause for one word). Polish and Hebrew have no stemmer in
-- PostgreSQL: their words match as written, other forms through the
-- trigram stage. Everything here is plain PostgreSQL and pg_trgm, which
-- every Supabase-style project has (no pgroonga, no zhparser).
--
-- Ranking, in three stages; the first that finds anything answers:
--  1. every word, in English or any of the other languages
--     (`websearch_to_tsquery` per language, so quotes and -exclusions work;
--     a CJK run as the phrase of its character pairs), or the query as
--     typed inside the text (case and line breaks aside: a pasted phrase
--     such as `grep -rn x`, which websearch syntax would read as an
--     exclusion, or a part of a German compound, `Brunnen` in
--     `Dorfbrunnen`). Ranked by ts_rank_cd scaled to 0..1 (r / (1 + r)),
--     plus 1 for a chunk that holds the query both as words and as typed;
--     a chunk that holds it only as typed ranks below all those;
--  2. trigram word similarity of the whole query (`%>` at threshold 0.4;
--     pg_trgm's default 0.6 misses most one-letter typos), ranked by
--     word_similarity: misspellings and fragments of words;
--  3. full text, any word (English), ranked by ts_rank_cd: questions
--     phrased with words the text does not use ("Is my dog allowed in the
--     flat?" finding "Pets are allowed with the landlord's written consent").
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

-- The overlapping character pairs of every run of CJK characters in `t`
-- (a run of one: that character), space-separated, runs in order; line
-- breaks inside a run are ignored. '' when there is none.
create or replace function private.cjk_pairs(t text)
returns text
language sql
immutable
strict
parallel safe
as $$
  select coalesce(string_agg(
           case when char_length(m.run[1]) = 1 then m.run[1]
                else (select string_agg(substr(m.run[1], i, 2), ' ' order by i)
                      from pg_catalog.generate_series(1, char_length(m.run[1]) - 1) i)
           end, ' ' order by m.n), '')
  from pg_catalog.regexp_matches(
         pg_catalog.regexp_replace(t,
           '([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])\s+(?=[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])',
           '\1', 'g'),
         '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+', 'g')
       with ordinality m(run, n)
$$;

-- The language of a chunk in Latin script that PostgreSQL can stem, by
-- which language's stop words it holds most of (among its words of up to
-- five letters, where stop words are); NULL for English (the `fts` column
-- stems it), a tie with English, or a text with no such stop words.
create or replace function private.latin_language(t text)
returns regconfig
language plpgsql
immutable
strict
parallel safe
as $$
declare
  short_words text[] := array(
    select w
    from pg_catalog.unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('pg_catalog.simple', t))) w
    where pg_catalog.char_length(w) <= 5
  );
begin
  return (
    select case when l.language <> 'english' then l.language::regconfig end
    from pg_catalog.unnest(array['english', 'german', 'french', 'spanish', 'italian', 'portuguese', 'dutch'])
         with ordinality l(language, n)
    cross join lateral (
      select count(*) as stop_words
      from pg_catalog.unnest(short_words) w
      where pg_catalog.ts_lexize((l.language || '_stem')::regdictionary, w) = '{}'
    ) s
    where s.stop_words > 0
    order by s.stop_words desc, l.n
    limit 1
  );
end;
$$;

-- What `fts_multilingual` holds: the words as written; Russian, Greek and
-- Arabic stems (each stemmer changes only its own script); the stems of the
-- chunk's own Latin-script language (private.latin_language) at weight B,
-- so that a query stemmed as French matches only stems of a chunk in a
-- stemmed language (French "tenant" stems to "ten": it must not find the
-- English word "ten"); and the CJK character pairs. Changing it changes no
-- stored row: recompute them with `update public.document_chunks set text = text`.
-- PL/pgSQL, as is latin_language: it keeps its plans for the session, where
-- SQL functions calling SQL functions plan again for every row (three
-- times slower over a bulk insert).
create or replace function private.multilingual_tsvector(t text)
returns tsvector
language plpgsql
immutable
strict
parallel safe
as $$
begin
  return pg_catalog.to_tsvector('pg_catalog.simple', t)
      || pg_catalog.to_tsvector('pg_catalog.russian', t)
      || pg_catalog.to_tsvector('pg_catalog.greek', t)
      || pg_catalog.to_tsvector('pg_catalog.arabic', t)
      || coalesce(pg_catalog.setweight(pg_catalog.to_tsvector(private.latin_language(t), t), 'B'), '')
      || pg_catalog.to_tsvector('pg_catalog.simple', private.cjk_pairs(t));
end;
$$;

-- `q` with every lexeme restricted to weight B.
create or replace function private.at_weight_b(q tsquery)
returns tsquery
language sql
immutable
strict
parallel safe
as $$
  select pg_catalog.regexp_replace(q::text, '(''(?:[^'']|'''')*'')', '\1:B', 'g')::tsquery
$$;

-- The query against `fts_multilingual`: every word in one of the languages
-- (websearch syntax in each), or every CJK run of it as the phrase of its
-- character pairs (a run of one character: any pair it begins).
create or replace function private.multilingual_tsquery(q text)
returns tsquery
language sql
immutable
strict
parallel safe
as $$
  with words as (
    select pg_catalog.websearch_to_tsquery('pg_catalog.simple', q)
        || pg_catalog.websearch_to_tsquery('pg_catalog.russian', q)
        || pg_catalog.websearch_to_tsquery('pg_catalog.greek', q)
        || pg_catalog.websearch_to_tsquery('pg_catalog.arabic', q)
        || private.at_weight_b(pg_catalog.websearch_to_tsquery('pg_catalog.german', q))
        || private.at_weight_b(pg_catalog.websearch_to_tsquery('pg_catalog.french', q))
        || private.at_weight_b(pg_catalog.websearch_to_tsquery('pg_catalog.spanish', q))
        || private.at_weight_b(pg_catalog.websearch_to_tsquery('pg_catalog.italian', q))
        || private.at_weight_b(pg_catalog.websearch_to_tsquery('pg_catalog.portuguese', q))
        || private.at_weight_b(pg_catalog.websearch_to_tsquery('pg_catalog.dutch', q)) as query
  ), cjk as (
    select string_agg(
             '(' || case when char_length(m.run[1]) = 1 then pg_catalog.quote_literal(m.run[1]) || ':*'
                    else (select string_agg(pg_catalog.quote_literal(substr(m.run[1], i, 2)), ' <-> ' order by i)
                          from pg_catalog.generate_series(1, char_length(m.run[1]) - 1) i)
                    end || ')', ' & ')::tsquery as query
    from pg_catalog.regexp_matches(q,
           '[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+', 'g') m(run)
  )
  -- NULL `cjk.query` (no CJK in q) leaves the words alone.
  select coalesce(words.query || cjk.query, words.query) from words, cjk
$$;

-- The query as typed, as a case-insensitive regular expression in which
-- any run of whitespace matches any other (chunk text keeps the PDF's line
-- breaks). NULL for fewer than 3 characters (no trigram to look up) or
-- more than 200 (a question, not a pasted phrase).
create or replace function private.as_typed_pattern(q text)
returns text
language sql
immutable
strict
parallel safe
as $$
  select case
    when char_length(pg_catalog.regexp_replace(q, '\s', '', 'g')) between 3 and 200 then
      pg_catalog.array_to_string(array(
        select pg_catalog.regexp_replace(w, '([.^$*+?()\[\]{}|\\])', '\\\1', 'g')
        from pg_catalog.regexp_split_to_table(pg_catalog.btrim(q, E' \t\r\n'), '\s+') w
      ), '\s+')
  end
$$;

-- The same as a case-insensitive LIKE pattern with `%` for each run of
-- whitespace: looser, but pg_trgm reads the trigrams of any script out of
-- a LIKE pattern, while out of a regular expression it reads none made of
-- characters above U+07FF (a CJK pattern would read the whole index; seen
-- with EXPLAIN ANALYZE on PostgreSQL 15). The search looks up this one and
-- checks the regular expression on what it finds.
create or replace function private.as_typed_like(q text)
returns text
language sql
immutable
strict
parallel safe
as $$
  select case
    when char_length(pg_catalog.regexp_replace(q, '\s', '', 'g')) between 3 and 200 then
      '%' || pg_catalog.array_to_string(array(
        select pg_catalog.regexp_replace(w, '([%_\\])', '\\\1', 'g')
        from pg_catalog.regexp_split_to_table(pg_catalog.btrim(q, E' \t\r\n'), '\s+') w
      ), '%') || '%'
  end
$$;

revoke all on function private.cjk_pairs(text), private.latin_language(text),
  private.multilingual_tsvector(text), private.at_weight_b(tsquery),
  private.multilingual_tsquery(text), private.as_typed_pattern(text),
  private.as_typed_like(text)
  from public, anon, authenticated, service_role;
-- The generated column below calls these as whoever writes a chunk (the
-- companion, as service_role).
grant execute on function private.cjk_pairs(text), private.latin_language(text),
  private.multilingual_tsvector(text) to service_role;

alter table public.document_chunks
  add column if not exists fts_multilingual tsvector
    generated always as (private.multilingual_tsvector(text)) stored;
create index if not exists document_chunks_fts_multilingual_idx
  on public.document_chunks using gin (fts_multilingual);

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
  languages tsquery := private.multilingual_tsquery(coalesce(query, ''));
  as_typed text := private.as_typed_pattern(coalesce(query, ''));
  as_typed_like text := private.as_typed_like(coalesce(query, ''));
  -- NULL when the query has no lexeme at all.
  any_word tsquery := (
    select string_agg(quote_literal(l), ' | ')::tsquery
    from unnest(tsvector_to_array(to_tsvector('english', coalesce(query, '')))) l
  );
begin
  if caller is null or coalesce(query, '') = '' then
    return;
  end if;

  if numnode(words) > 0 or numnode(languages) > 0 or as_typed is not null then
    -- The caller's matching chunks first (owner and text indexes), then
    -- their documents: joining documents first makes the planner walk every
    -- chunk of every document and filter. One query per way of matching,
    -- each with its own index: for an OR of the three the planner reads all
    -- of the caller's chunks and filters.
    return query
      with matched as materialized (
        select c.id from public.document_chunks c
        where c.owner_id = caller and c.fts @@ words
          and (document_ids is null or c.document_id = any (document_ids))
        union
        select c.id from public.document_chunks c
        where c.owner_id = caller and c.fts_multilingual @@ languages
          and (document_ids is null or c.document_id = any (document_ids))
        union
        select c.id from public.document_chunks c
        where c.owner_id = caller
          and c.text operator(pg_catalog.~~*) as_typed_like
          and c.text operator(pg_catalog.~*) as_typed
          and (document_ids is null or c.document_id = any (document_ids))
      ),
      hits as materialized (
        select c.id, c.document_id, c.ordinal,
               greatest(ts_rank_cd(c.fts, words), ts_rank_cd(c.fts_multilingual, languages)) as rank,
               (c.fts @@ words or c.fts_multilingual @@ languages) as as_words,
               c.text operator(pg_catalog.~*) as_typed as typed,
               c.text
        from matched m
        join public.document_chunks c on c.id = m.id
      )
      select h.id,
             case when h.as_words then h.rank / (1 + h.rank) + case when h.typed then 1 else 0 end
                  -- Only as typed (inside longer words, or a phrase whose
                  -- `-x` websearch reads as an exclusion): below every
                  -- hit by words.
                  else 0.001 * extensions.word_similarity(query, h.text)
             end::real as score
      from hits h
      join public.documents d on d.id = h.document_id and d.owner_id = caller
      where d.status = 'ready'
      order by score desc, h.document_id, h.ordinal
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
