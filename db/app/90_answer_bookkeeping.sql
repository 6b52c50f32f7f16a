-- Quire: an answer's bookkeeping in fewer requests (issue 18). The companion
-- begins an answer with one call instead of two, and ends it with one
-- instead of three; each is one transaction, so a half-begun or half-ended
-- answer is never left behind.
--
-- Needs: 20_conversations.sql (public.tool_sessions), 65_chat_turns.sql
-- (public.begin_chat_turn) and 83_per_user_limits.sql
-- (public.finish_chat_message, private.run_slots).
--
-- begin_chat_answer   begin_chat_turn (the question's row and the answer's
--                     `streaming` row, the conversation's owner checked),
--                     and the run's tool session: the hash of its
--                     session_token, valid until `token_expires_at`.
-- finish_chat_answer  finish_chat_message (the last batch and the final
--                     row), then the run's tool session deleted — nobody may
--                     search with its token any more — and its run slot
--                     given back. Returns the final status, as
--                     finish_chat_message does.
--
-- SECURITY INVOKER (they run as service_role), executable by service_role
-- only, like the functions they call.

create or replace function public.begin_chat_answer(
  conversation_id uuid,
  owner_id uuid,
  content text,
  token_hash text,
  token_expires_at timestamptz
)
returns table (user_message_id uuid, user_seq integer, message_id uuid, seq integer)
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return query
  select t.user_message_id, t.user_seq, t.message_id, t.seq
  from public.begin_chat_turn(begin_chat_answer.conversation_id, begin_chat_answer.owner_id,
                              begin_chat_answer.content) t;
  insert into public.tool_sessions (token_hash, owner_id, conversation_id, expires_at)
  values (begin_chat_answer.token_hash, begin_chat_answer.owner_id,
          begin_chat_answer.conversation_id, begin_chat_answer.token_expires_at);
end;
$$;

create or replace function public.finish_chat_answer(
  message_id uuid,
  events jsonb,
  status text,
  content text,
  citations jsonb,
  run_id text,
  error text,
  token_hash text,
  slot_id uuid
)
returns text
language plpgsql
security invoker
set search_path = ''
as $$
declare
  result text;
begin
  result := public.finish_chat_message(
    finish_chat_answer.message_id, finish_chat_answer.events, finish_chat_answer.status,
    finish_chat_answer.content, finish_chat_answer.citations, finish_chat_answer.run_id,
    finish_chat_answer.error);
  delete from public.tool_sessions s where s.token_hash = finish_chat_answer.token_hash;
  delete from private.run_slots s where s.id = finish_chat_answer.slot_id;
  return result;
end;
$$;

do $$
declare
  fn text;
begin
  foreach fn in array array[
    'public.begin_chat_answer(uuid, uuid, text, text, timestamptz)',
    'public.finish_chat_answer(uuid, jsonb, text, text, jsonb, text, text, text, uuid)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
