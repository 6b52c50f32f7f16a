-- Quire: an answer in fewer requests (issue 18). A question begins with one
-- call, and the events of many answers are written in one.
--
-- Needs: 83_per_user_limits.sql (public.take_run_slot,
-- public.append_chat_events), 90_answer_bookkeeping.sql
-- (public.finish_chat_answer) and 93_answer_ground.sql
-- (public.begin_chat_answer).
--
-- begin_chat          a question's start, in one transaction: one of the
--                     user's run slots (public.take_run_slot, taken under
--                     `holder` for `lease_seconds`); a new conversation
--                     when `conversation_id` is NULL (`title`, and the
--                     platform session `agent_session_id` made for it; the
--                     per-user cap applies); then public.begin_chat_answer
--                     (the question's row, the answer's `streaming` row
--                     with its `sources`, the run's tool session). Returns
--                     one row: the slot, the conversation, the question's
--                     and the answer's ids — all NULL, and nothing written,
--                     when the user already has `max_running` answers being
--                     written. An error (someone else's or a deleted
--                     conversation, the conversation cap) leaves nothing
--                     written, the slot included.
-- write_chat_answers  `batches` is an array of objects, one per answer:
--                     {"message_id", "events", "content"} is appended as
--                     append_chat_events does; with a "finish" object
--                     ({"status", "citations", "run_id", "error",
--                     "token_hash", "slot_id"}) the answer is finished as
--                     finish_chat_answer does, `content` its final text.
--                     In the order given. Returns one row per batch: its
--                     message id; for an append, what append_chat_events
--                     returned (`streaming`, true: the answer is still
--                     streaming); for a finish, what finish_chat_answer
--                     returned (`status`, NULL when the answer was gone or
--                     already finished). An answer appears at most once in
--                     a call: the companion hands an answer's next rows
--                     only after the write of its previous ones returned.
--
-- SECURITY INVOKER (it runs as service_role), executable by service_role
-- only, like the functions it calls.

create or replace function public.write_chat_answers(batches jsonb)
returns table (message_id uuid, streaming boolean, status text)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  batch jsonb;
  finish jsonb;
begin
  for batch in select b from pg_catalog.jsonb_array_elements(batches) b loop
    message_id := (batch ->> 'message_id')::uuid;
    finish := batch -> 'finish';
    if finish is null or pg_catalog.jsonb_typeof(finish) = 'null' then
      streaming := public.append_chat_events(message_id, batch -> 'events', batch ->> 'content');
      status := null;
    else
      streaming := null;
      status := public.finish_chat_answer(
        message_id, batch -> 'events', finish ->> 'status', batch ->> 'content',
        coalesce(finish -> 'citations', '[]'::jsonb), finish ->> 'run_id', finish ->> 'error',
        finish ->> 'token_hash', (finish ->> 'slot_id')::uuid);
    end if;
    return next;
  end loop;
end;
$$;

create or replace function public.begin_chat(
  owner_id uuid,
  holder text,
  max_running integer,
  lease_seconds integer,
  conversation_id uuid,
  agent_session_id text,
  title text,
  content text,
  token_hash text,
  token_expires_at timestamptz,
  sources jsonb
)
returns table (slot_id uuid, conversation uuid, user_message_id uuid, message_id uuid)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  turn record;
begin
  slot_id := public.take_run_slot(begin_chat.owner_id, begin_chat.holder,
                                  begin_chat.max_running, begin_chat.lease_seconds);
  if slot_id is null then
    return next;
    return;
  end if;
  conversation := begin_chat.conversation_id;
  if conversation is null then
    insert into public.conversations as c (owner_id, title, agent_session_id)
    values (begin_chat.owner_id, begin_chat.title, begin_chat.agent_session_id)
    returning c.id into conversation;
  end if;
  select t.user_message_id, t.message_id into turn
  from public.begin_chat_answer(conversation, begin_chat.owner_id, begin_chat.content,
                                begin_chat.token_hash, begin_chat.token_expires_at,
                                begin_chat.sources) t;
  user_message_id := turn.user_message_id;
  message_id := turn.message_id;
  return next;
end;
$$;

do $$
declare
  fn text;
begin
  foreach fn in array array[
    'public.write_chat_answers(jsonb)',
    'public.begin_chat(uuid, text, integer, integer, uuid, text, text, text, text, timestamptz, jsonb)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
