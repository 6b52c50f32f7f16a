-- Quire: the functions through which the companion writes a chat turn —
-- the question, the streamed answer's event log, and the finished answer.
--
-- Needs: 20_conversations.sql (public.conversations, public.chat_messages,
-- public.chat_events) and 40_realtime.sql (the chat_events broadcast
-- trigger, which fires for every row inserted here).
--
-- The companion reaches the database only through PostgREST with the
-- service-role key; these functions make each step one request and one
-- transaction. SECURITY INVOKER (they run as service_role), executable by
-- service_role only.
--
-- begin_chat_turn     locks the conversation (so two questions asked at once
--                     get distinct seqs), checks its owner, and inserts the
--                     user's message (`complete`) and the answer's row
--                     (`streaming`, empty) — before the first event, which
--                     references it.
-- append_chat_events  inserts a batch of events (idempotent on
--                     (message_id, seq), so a retried batch is harmless) and
--                     keeps the answer's text so far in its row; returns
--                     false once the answer is no longer `streaming`
--                     (stopped from another companion), which tells the
--                     writer to end the run.
-- stop_chat_message   the owner's Stop when no local run holds the answer:
--                     `streaming` → `stopped`, text kept.
-- finish_chat_message the last batch and the final row (status, content,
--                     citations, run id, error) in one transaction.
--
-- Events are given as a JSON array of {seq, kind, payload}.

create or replace function public.begin_chat_turn(conversation_id uuid, owner_id uuid, content text)
returns table (user_message_id uuid, user_seq integer, message_id uuid, seq integer)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  next_seq integer;
  question uuid;
  answer uuid;
begin
  perform 1
  from public.conversations c
  where c.id = begin_chat_turn.conversation_id and c.owner_id = begin_chat_turn.owner_id
  for update;
  if not found then
    raise exception 'conversation % not found', begin_chat_turn.conversation_id
      using errcode = 'PT404';
  end if;

  select coalesce(max(m.seq), -1) + 1 into next_seq
  from public.chat_messages m
  where m.conversation_id = begin_chat_turn.conversation_id;

  insert into public.chat_messages as m (conversation_id, owner_id, seq, role, status, content)
  values (begin_chat_turn.conversation_id, begin_chat_turn.owner_id, next_seq, 'user', 'complete',
          begin_chat_turn.content)
  returning m.id into question;
  insert into public.chat_messages as m (conversation_id, owner_id, seq, role, status, content)
  values (begin_chat_turn.conversation_id, begin_chat_turn.owner_id, next_seq + 1, 'assistant',
          'streaming', '')
  returning m.id into answer;

  update public.conversations c set updated_at = pg_catalog.now()
  where c.id = begin_chat_turn.conversation_id;

  return query select question, next_seq, answer, next_seq + 1;
end;
$$;

-- Internal: inserts events for an answer. Returns the number inserted.
create or replace function private.insert_chat_events(message_id uuid, events jsonb)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  inserted integer;
begin
  if pg_catalog.jsonb_typeof(insert_chat_events.events) is distinct from 'array' then
    raise exception 'events must be a JSON array' using errcode = '22023';
  end if;
  insert into public.chat_events as e (conversation_id, message_id, owner_id, seq, kind, payload)
  select m.conversation_id, m.id, m.owner_id, (ev->>'seq')::integer, ev->>'kind',
         coalesce(ev->'payload', '{}'::jsonb)
  from public.chat_messages m
  cross join lateral pg_catalog.jsonb_array_elements(insert_chat_events.events)
    with ordinality as x(ev, n)
  where m.id = insert_chat_events.message_id
  order by x.n
  on conflict on constraint chat_events_message_id_seq_key do nothing;
  get diagnostics inserted = row_count;
  return inserted;
end;
$$;

create or replace function public.append_chat_events(message_id uuid, events jsonb, content text)
returns boolean
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform private.insert_chat_events(append_chat_events.message_id, append_chat_events.events);
  update public.chat_messages m
  set content = coalesce(append_chat_events.content, m.content)
  where m.id = append_chat_events.message_id and m.status = 'streaming';
  return found;
end;
$$;

-- Returns the answer's status afterwards, or NULL when `owner_id` has no
-- such answer.
create or replace function public.stop_chat_message(message_id uuid, owner_id uuid)
returns text
language plpgsql
security invoker
set search_path = ''
as $$
declare
  result text;
begin
  update public.chat_messages m
  set status = 'stopped'
  where m.id = stop_chat_message.message_id and m.owner_id = stop_chat_message.owner_id
    and m.role = 'assistant' and m.status = 'streaming';
  select m.status into result
  from public.chat_messages m
  where m.id = stop_chat_message.message_id and m.owner_id = stop_chat_message.owner_id
    and m.role = 'assistant';
  return result;
end;
$$;

-- Returns the answer's final status, or NULL when the answer is gone or
-- was already finished.
create or replace function public.finish_chat_message(
  message_id uuid,
  events jsonb,
  status text,
  content text,
  citations jsonb default '[]'::jsonb,
  run_id text default null,
  error text default null
)
returns text
language plpgsql
security invoker
set search_path = ''
as $$
declare
  result text;
begin
  if finish_chat_message.status not in ('complete', 'stopped', 'failed') then
    raise exception 'finish_chat_message: % is not a final status', finish_chat_message.status
      using errcode = '22023';
  end if;
  perform private.insert_chat_events(finish_chat_message.message_id, finish_chat_message.events);
  update public.chat_messages m
  set status = finish_chat_message.status,
      content = coalesce(finish_chat_message.content, m.content),
      citations = coalesce(finish_chat_message.citations, '[]'::jsonb),
      run_id = coalesce(finish_chat_message.run_id, m.run_id),
      error = finish_chat_message.error
  where m.id = finish_chat_message.message_id and m.status in ('streaming', 'stopped')
  returning m.status into result;
  if result is not null then
    update public.conversations c set updated_at = pg_catalog.now()
    from public.chat_messages m
    where m.id = finish_chat_message.message_id and c.id = m.conversation_id;
  end if;
  return result;
end;
$$;

do $$
declare
  fn text;
begin
  foreach fn in array array[
    'public.begin_chat_turn(uuid, uuid, text)',
    'private.insert_chat_events(uuid, jsonb)',
    'public.append_chat_events(uuid, jsonb, text)',
    'public.stop_chat_message(uuid, uuid)',
    'public.finish_chat_message(uuid, jsonb, text, text, jsonb, text, text)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
