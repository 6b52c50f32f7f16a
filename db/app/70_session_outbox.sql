-- Quire: platform agent sessions to delete once their conversation is gone.
--
-- Needs: 20_conversations.sql (public.conversations).
--
-- A conversation's answers live on the platform too: its agent session
-- (`conversations.agent_session_id`) keeps every run's messages. Deleting the
-- conversation must delete that session (DELETE /api/agents/{id}/sessions/
-- {session_id}), however the row goes: the app's delete under the user's
-- token, a direct PostgREST DELETE behind Quire's back, or the cascade when a
-- user account is deleted. So the database records it, not the client: an
-- AFTER DELETE trigger writes the session id into an outbox, and the
-- companion drains it (pending_session_deletions, then
-- forget_session_deletion once the platform answered 204 or 404).
--
-- private.session_deletions  the outbox; service_role only.

create schema if not exists private;
grant usage on schema private to service_role;

create table if not exists private.session_deletions (
  session_id text primary key check (char_length(session_id) <= 255),
  attempts integer not null default 0 check (attempts >= 0),
  created_at timestamptz not null default now()
);

alter table private.session_deletions enable row level security;
revoke all on private.session_deletions from public, anon, authenticated, service_role;
grant select, insert, update, delete on private.session_deletions to service_role;

-- SECURITY DEFINER: the user deleting their own conversation cannot write the
-- outbox themselves (no grant), but their delete must still enqueue.
create or replace function private.enqueue_session_deletion()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.agent_session_id is not null then
    insert into private.session_deletions (session_id)
    values (old.agent_session_id)
    on conflict (session_id) do nothing;
  end if;
  return null;
end;
$$;
revoke all on function private.enqueue_session_deletion() from public, anon, authenticated;

drop trigger if exists conversations_enqueue_session_deletion on public.conversations;
create trigger conversations_enqueue_session_deletion
  after delete on public.conversations
  for each row execute function private.enqueue_session_deletion();

-- Up to `max_count` session ids to delete, oldest first; each call counts an
-- attempt, so a session the platform keeps refusing is visible in the table.
create or replace function public.pending_session_deletions(max_count integer default 50)
returns setof text
language sql
security invoker
set search_path = ''
as $$
  update private.session_deletions s
     set attempts = s.attempts + 1
   where s.session_id in (
     select p.session_id from private.session_deletions p
     order by p.created_at
     limit greatest(1, least(pending_session_deletions.max_count, 500))
     for update skip locked)
  returning s.session_id;
$$;

-- The platform no longer has the session (deleted now, or already gone).
create or replace function public.forget_session_deletion(session_id text)
returns void
language sql
security invoker
set search_path = ''
as $$
  delete from private.session_deletions s
   where s.session_id = forget_session_deletion.session_id;
$$;

do $$
declare
  fn text;
begin
  foreach fn in array array[
    'public.pending_session_deletions(integer)',
    'public.forget_session_deletion(text)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', fn);
    execute format('grant execute on function %s to service_role', fn);
  end loop;
end
$$;
