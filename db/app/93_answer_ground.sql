-- Quire: an answer keeps its ground, and Regenerate makes a version of it
-- (issue 17, items 2 and 3).
--
-- Needs: 20_conversations.sql (public.chat_messages), 65_chat_turns.sql
-- (public.begin_chat_turn) and 90_answer_bookkeeping.sql
-- (public.begin_chat_answer, whose five-argument form stays for a
-- companion of the version before).
--
-- chat_messages.sources      the chunks the answer was given, as its
--                            `context` event names them ({id, document_id,
--                            chunk_id, page, page_end, title}, no text), in
--                            context-item order. Written with the answer's
--                            row, before its first event, so an answer
--                            stopped or failed before any `[n]` marker still
--                            shows its sources when reopened. '[]' for
--                            answers stored before this file.
-- chat_messages.question_id  for an answer: the question's row. Every
--                            version of an answer names the same question;
--                            NULL for answers stored before this file (their
--                            question is the row just before them).
--
-- Versions: Regenerate adds an answer row to the same question with the
-- conversation's next seq. The versions of an answer are the assistant rows
-- with its question_id, in seq order; the one a conversation shows (in
-- history, in export, on every device) is the latest. A client may show an
-- earlier one while the person reads it; that choice is not stored.
--
-- begin_chat_answer(…, sources)  begin_chat_answer with the answer's
--                     sources and question_id written into its row.
-- regenerate_chat_answer  a new version of `answer_id` (an answer of
--                     `owner_id`'s, not being written): locks the
--                     conversation, inserts the version's `streaming` row
--                     (next seq, the same question, `sources`) and the run's
--                     tool session. Returns the conversation, the question
--                     (id, seq, text) and the version's id and seq. PT404
--                     for an answer that is not the owner's (or is a
--                     question), PT409 while a version of it is being
--                     written.
--
-- SECURITY INVOKER (they run as service_role), executable by service_role
-- only, like the functions they build on.

alter table public.chat_messages
  add column if not exists sources jsonb not null default '[]'::jsonb
    check (jsonb_typeof(sources) = 'array');
alter table public.chat_messages
  add column if not exists question_id uuid;
create index if not exists chat_messages_question_id_idx
  on public.chat_messages (question_id) where question_id is not null;

create or replace function public.begin_chat_answer(
  conversation_id uuid,
  owner_id uuid,
  content text,
  token_hash text,
  token_expires_at timestamptz,
  sources jsonb
)
returns table (user_message_id uuid, user_seq integer, message_id uuid, seq integer)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  turn record;
begin
  if pg_catalog.jsonb_typeof(begin_chat_answer.sources) is distinct from 'array' then
    raise exception 'sources must be a JSON array' using errcode = '22023';
  end if;
  select t.user_message_id, t.user_seq, t.message_id, t.seq into turn
  from public.begin_chat_answer(begin_chat_answer.conversation_id, begin_chat_answer.owner_id,
                                begin_chat_answer.content, begin_chat_answer.token_hash,
                                begin_chat_answer.token_expires_at) t;
  update public.chat_messages m
  set sources = begin_chat_answer.sources, question_id = turn.user_message_id
  where m.id = turn.message_id;
  return query select turn.user_message_id, turn.user_seq, turn.message_id, turn.seq;
end;
$$;

create or replace function public.regenerate_chat_answer(
  answer_id uuid,
  owner_id uuid,
  token_hash text,
  token_expires_at timestamptz,
  sources jsonb
)
returns table (
  conversation_id uuid,
  user_message_id uuid,
  user_seq integer,
  question text,
  message_id uuid,
  seq integer
)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  answer public.chat_messages;
  asked public.chat_messages;
  next_seq integer;
  version uuid;
begin
  if pg_catalog.jsonb_typeof(regenerate_chat_answer.sources) is distinct from 'array' then
    raise exception 'sources must be a JSON array' using errcode = '22023';
  end if;
  select m.* into answer
  from public.chat_messages m
  where m.id = regenerate_chat_answer.answer_id and m.owner_id = regenerate_chat_answer.owner_id
    and m.role = 'assistant';
  if not found then
    raise exception 'answer % not found', regenerate_chat_answer.answer_id
      using errcode = 'PT404';
  end if;
  -- Two versions asked at once get distinct seqs, as two questions do.
  perform 1 from public.conversations c where c.id = answer.conversation_id for update;

  if answer.question_id is not null then
    select m.* into asked from public.chat_messages m where m.id = answer.question_id;
  else
    select m.* into asked
    from public.chat_messages m
    where m.conversation_id = answer.conversation_id and m.role = 'user' and m.seq < answer.seq
    order by m.seq desc
    limit 1;
  end if;
  if asked.id is null then
    raise exception 'answer % has no question', regenerate_chat_answer.answer_id
      using errcode = 'PT404';
  end if;
  perform 1
  from public.chat_messages m
  where m.conversation_id = answer.conversation_id and m.role = 'assistant'
    and m.status = 'streaming'
    and (m.id = answer.id or m.question_id = asked.id);
  if found then
    raise exception 'a version of answer % is being written', regenerate_chat_answer.answer_id
      using errcode = 'PT409';
  end if;

  select coalesce(max(m.seq), -1) + 1 into next_seq
  from public.chat_messages m
  where m.conversation_id = answer.conversation_id;
  insert into public.chat_messages as m
    (conversation_id, owner_id, seq, role, status, content, sources, question_id)
  values (answer.conversation_id, answer.owner_id, next_seq, 'assistant', 'streaming', '',
          regenerate_chat_answer.sources, asked.id)
  returning m.id into version;
  -- The first version of an answer stored before this file names its question too.
  update public.chat_messages m set question_id = asked.id
  where m.id = answer.id and m.question_id is null;
  update public.conversations c set updated_at = pg_catalog.now()
  where c.id = answer.conversation_id;

  insert into public.tool_sessions (token_hash, owner_id, conversation_id, expires_at)
  values (regenerate_chat_answer.token_hash, answer.owner_id, answer.conversation_id,
          regenerate_chat_answer.token_expires_at);

  return query select answer.conversation_id, asked.id, asked.seq, asked.content, version, next_seq;
end;
$$;

do $$
declare
  fn text;
begin
  foreach fn in array array[
    'public.begin_chat_answer(uuid, uuid, text, text, timestamptz, jsonb)',
    'public.regenerate_chat_answer(uuid, uuid, text, timestamptz, jsonb)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
