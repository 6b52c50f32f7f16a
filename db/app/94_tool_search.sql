-- Quire: the search tool's search in one request (issue 18). The tool
-- resolved its session_token with one request (as the service role) and
-- searched with a second (under a token for the session's owner); this does
-- both in one statement, and the search still runs under the owner's
-- identity, so the owner's policies decide what it finds.
--
-- Needs: 20_conversations.sql (public.tool_sessions),
-- 92_conversation_scope.sql (public.search_conversation_chunks).
--
-- search_with_tool_session(session_token, query, match_count)
--     the live session whose token is `session_token` (hashed here: a stored
--     hash is never accepted as a token), then search_conversation_chunks
--     (query, the session's conversation, match_count) as the session's
--     owner: the conversation's documents only. An unknown, expired or finished token finds nothing: it
--     is SQLSTATE PT401 (HTTP 401 through PostgREST), hint
--     `tool_session_unknown`, the same for each.
--
-- Decisions:
--  * Only the companion calls it: the caller is `authenticated` with no
--    user of its own, a token whose `sub` is the nil uuid, which only the
--    holder of the JWT secret can sign (GoTrue never issues one). Anyone
--    else is SQLSTATE 42501. That identity owns nothing, so if the owner's
--    identity were not taken the search would find nothing.
--  * The owner's identity is the claims' `sub` (and `request.jwt.claim.sub`,
--    which auth.uid() reads first), set for this function's run only: the
--    `set search_path` clause makes PostgreSQL undo every setting the
--    function changed when it returns.
--  * The session is read by a SECURITY DEFINER helper (tool_sessions has no
--    policies: service role only), which returns the owner and the
--    conversation of a live session and nothing else.

create or replace function private.live_tool_session(session_token text)
returns table (owner_id uuid, conversation_id uuid)
language sql
stable
security definer
set search_path = ''
as $$
  select s.owner_id, s.conversation_id
  from public.tool_sessions s
  where s.token_hash = pg_catalog.encode(
          pg_catalog.sha256(pg_catalog.convert_to(live_tool_session.session_token, 'UTF8')), 'hex')
    and s.expires_at > pg_catalog.now()
$$;

revoke all on function private.live_tool_session(text)
  from public, anon, authenticated, service_role;
grant execute on function private.live_tool_session(text) to authenticated;

create or replace function public.search_with_tool_session(
  session_token text,
  query text,
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
security invoker
set search_path = ''
as $$
declare
  session record;
begin
  if (select auth.uid()) is distinct from '00000000-0000-0000-0000-000000000000'::uuid then
    raise exception 'search_with_tool_session is the companion''s'
      using errcode = '42501';
  end if;
  select * into session
  from private.live_tool_session(search_with_tool_session.session_token);
  if not found then
    raise exception 'unknown, expired or finished tool session'
      using errcode = 'PT401', hint = 'tool_session_unknown';
  end if;
  perform pg_catalog.set_config('request.jwt.claim.sub', session.owner_id::text, true);
  perform pg_catalog.set_config('request.jwt.claims',
    (coalesce(nullif(pg_catalog.current_setting('request.jwt.claims', true), ''), '{}')::jsonb
       || pg_catalog.jsonb_build_object('sub', session.owner_id))::text,
    true);
  return query
  select h.*
  from public.search_conversation_chunks(search_with_tool_session.query,
                                         session.conversation_id,
                                         search_with_tool_session.match_count) h;
end;
$$;

revoke all on function public.search_with_tool_session(text, text, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.search_with_tool_session(text, text, integer)
  to authenticated;
