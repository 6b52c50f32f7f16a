-- Quire: per-user limits that hold under concurrency and across companions.
--
-- Needs: 10_documents.sql, 20_conversations.sql, 65_chat_turns.sql
-- (private.insert_chat_events, append_chat_events, finish_chat_message).
--
-- A limit counted in one request and enforced in a later one lets a user
-- who sends many requests at once through it; a limit counted in one
-- companion's memory lets a user through every other companion. So each
-- limit here is counted and taken in one transaction that holds a lock per
-- user (a transaction-level advisory lock on the user's id: requests of the
-- same user wait for each other, other users' do not), in the database
-- every companion shares:
--
--  * documents, at most 1,000 per user, however inserted (a trigger):
--    SQLSTATE PT409 (HTTP 409 through PostgREST);
--  * conversations, at most 10,000 per user, however inserted (a trigger;
--    users insert their own through PostgREST): PT409;
--  * documents in flight (`uploading` … `indexing`, changed within the last
--    hour), at most the companion's `max_in_flight`: register_document
--    counts and inserts in one transaction: PT429 (HTTP 429);
--  * answers being written, at most the companion's `max_running`:
--    run slots (private.run_slots), taken with take_run_slot, held under a
--    lease the companion renews (renew_run_slot) and given back with
--    release_run_slot; a slot whose companion died frees itself when its
--    lease runs out, like an ingest lease (60_ingest.sql);
--  * an answer's text, at most max_answer_chars() (100,000) characters:
--    append_chat_events stops an answer that grows past it (the row becomes
--    `stopped`, its text cut there, and the writer is told to end the run)
--    and finish_chat_message and the events cut their text there too.
-- The functions are executable by service_role only.

create schema if not exists private;
grant usage on schema private to service_role;

-- The lock that serialises one user's counted inserts of one kind.
create or replace function private.lock_user_limit(kind text, owner_id uuid)
returns void
language sql
volatile
set search_path = ''
as $$
  select pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('quire.' || kind || ':' || owner_id::text, 0))
$$;

-- SECURITY DEFINER: the count must see all of the owner's rows, whoever
-- inserts (a user's own insert sees only what RLS lets it).
create or replace function private.cap_documents_per_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.lock_user_limit('documents', new.owner_id);
  if (select count(*) from public.documents d where d.owner_id = new.owner_id) >= 1000 then
    raise exception 'a user has at most 1000 documents'
      using errcode = 'PT409', hint = 'too_many_documents';
  end if;
  return new;
end;
$$;

create or replace function private.cap_conversations_per_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.lock_user_limit('conversations', new.owner_id);
  if (select count(*) from public.conversations c where c.owner_id = new.owner_id) >= 10000 then
    raise exception 'a user has at most 10000 conversations'
      using errcode = 'PT409', hint = 'too_many_conversations';
  end if;
  return new;
end;
$$;

revoke all on function private.lock_user_limit(text, uuid), private.cap_documents_per_user(),
  private.cap_conversations_per_user()
  from public, anon, authenticated, service_role;
grant execute on function private.lock_user_limit(text, uuid) to service_role;

drop trigger if exists documents_cap_per_user on public.documents;
create trigger documents_cap_per_user
  before insert on public.documents
  for each row execute function private.cap_documents_per_user();

drop trigger if exists conversations_cap_per_user on public.conversations;
create trigger conversations_cap_per_user
  before insert on public.conversations
  for each row execute function private.cap_conversations_per_user();

-- POST /api/documents: a new `uploading` document of `owner_id`, unless
-- they already have `max_in_flight` documents in flight (PT429) or as many
-- documents as they may have (PT409, the trigger).
create or replace function public.register_document(
  owner_id uuid,
  title text,
  byte_size bigint,
  sha256 text,
  max_in_flight integer
)
returns table (document_id uuid, storage_path text, status text)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  perform private.lock_user_limit('documents', register_document.owner_id);
  if (
    select count(*)
    from public.documents d
    where d.owner_id = register_document.owner_id
      and d.status in ('uploading', 'stored', 'extracting', 'indexing')
      and d.updated_at > pg_catalog.now() - interval '1 hour'
  ) >= register_document.max_in_flight then
    raise exception 'a user has at most % documents in flight', register_document.max_in_flight
      using errcode = 'PT429', hint = 'too_many_uploads';
  end if;

  return query
    insert into public.documents as d (owner_id, title, byte_size, sha256)
    values (register_document.owner_id, register_document.title, register_document.byte_size,
            register_document.sha256)
    returning d.id, d.storage_path, d.status;
end;
$$;

create table if not exists private.run_slots (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users (id) on delete cascade,
  -- The companion worker id holding it, for whoever reads the table.
  holder text not null check (char_length(holder) <= 200),
  lease_until timestamptz not null,
  created_at timestamptz not null default now()
);
create index if not exists run_slots_owner_id_idx on private.run_slots (owner_id);

alter table private.run_slots enable row level security;
revoke all on private.run_slots from public, anon, authenticated, service_role;
grant select, insert, update, delete on private.run_slots to service_role;

-- A slot for one of `owner_id`'s answers, held `lease_seconds`; NULL when
-- they already have `max_running` answers being written. Expired slots of
-- the owner go first.
create or replace function public.take_run_slot(
  owner_id uuid,
  holder text,
  max_running integer,
  lease_seconds integer
)
returns uuid
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  slot uuid;
begin
  if coalesce(lease_seconds, 0) < 1 then
    raise exception 'take_run_slot needs a positive lease' using errcode = '22023';
  end if;
  perform private.lock_user_limit('run_slots', take_run_slot.owner_id);
  delete from private.run_slots s
  where s.owner_id = take_run_slot.owner_id and s.lease_until <= pg_catalog.now();
  if (select count(*) from private.run_slots s where s.owner_id = take_run_slot.owner_id)
     >= take_run_slot.max_running then
    return null;
  end if;
  insert into private.run_slots (owner_id, holder, lease_until)
  values (take_run_slot.owner_id, take_run_slot.holder,
          pg_catalog.now() + pg_catalog.make_interval(secs => take_run_slot.lease_seconds))
  returning id into slot;
  return slot;
end;
$$;

-- Extends a live slot's lease; false when the slot is gone (released, or
-- expired and taken over).
create or replace function public.renew_run_slot(slot_id uuid, lease_seconds integer)
returns boolean
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  update private.run_slots s
  set lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => renew_run_slot.lease_seconds)
  where s.id = renew_run_slot.slot_id and s.lease_until > pg_catalog.now();
  return found;
end;
$$;

create or replace function public.release_run_slot(slot_id uuid)
returns void
language sql
volatile
security invoker
set search_path = ''
as $$
  delete from private.run_slots s where s.id = release_run_slot.slot_id
$$;

-- The longest answer Quire keeps, in characters.
create or replace function private.max_answer_chars()
returns integer
language sql
immutable
parallel safe
set search_path = ''
as $$ select 100000 $$;

-- What an answer cut at the limit says in its `error`.
create or replace function private.answer_cut_note()
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$ select 'The answer was cut at 100,000 characters, the longest answer Quire keeps.' $$;

-- As in 65_chat_turns.sql, with the `content` of an event's payload (the
-- final text of `complete` and `error` events) cut at the limit.
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
         case when pg_catalog.jsonb_typeof(ev->'payload'->'content') = 'string'
              then pg_catalog.jsonb_set(ev->'payload', '{content}',
                     pg_catalog.to_jsonb(pg_catalog.left(ev->'payload'->>'content',
                                                         private.max_answer_chars())))
              else coalesce(ev->'payload', '{}'::jsonb)
         end
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

-- As in 65_chat_turns.sql; an answer whose text grows past the limit is
-- `stopped` here, its text cut, and false tells the writer to end the run.
create or replace function public.append_chat_events(message_id uuid, events jsonb, content text)
returns boolean
language plpgsql
security invoker
set search_path = ''
as $$
declare
  too_long boolean := pg_catalog.char_length(append_chat_events.content) > private.max_answer_chars();
begin
  perform private.insert_chat_events(append_chat_events.message_id, append_chat_events.events);
  update public.chat_messages m
  set content = coalesce(pg_catalog.left(append_chat_events.content, private.max_answer_chars()),
                         m.content),
      status = case when too_long then 'stopped' else m.status end,
      error = case when too_long then private.answer_cut_note() else m.error end
  where m.id = append_chat_events.message_id and m.status = 'streaming';
  return found and not coalesce(too_long, false);
end;
$$;

-- As in 65_chat_turns.sql, the text cut at the limit (and the note kept).
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
      content = pg_catalog.left(coalesce(finish_chat_message.content, m.content),
                                private.max_answer_chars()),
      citations = coalesce(finish_chat_message.citations, '[]'::jsonb),
      run_id = coalesce(finish_chat_message.run_id, m.run_id),
      error = coalesce(finish_chat_message.error,
                       case when pg_catalog.char_length(coalesce(finish_chat_message.content, m.content))
                                 > private.max_answer_chars()
                              or m.error = private.answer_cut_note()
                            then private.answer_cut_note() end)
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
    'public.register_document(uuid, text, bigint, text, integer)',
    'public.take_run_slot(uuid, text, integer, integer)',
    'public.renew_run_slot(uuid, integer)',
    'public.release_run_slot(uuid)',
    'private.max_answer_chars()',
    'private.answer_cut_note()',
    'private.insert_chat_events(uuid, jsonb)',
    'public.append_chat_events(uuid, jsonb, text)',
    'public.finish_chat_message(uuid, jsonb, text, text, jsonb, text, text)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
